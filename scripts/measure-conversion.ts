/**
 * Measures a full-size conversion (not a test): for each component in turn, seeded random weights of the published
 * size are written in the upstream checkpoint format (scripts/make_upstream_checkpoints.py, one tensor in memory at
 * a time), the other two components at tiny size beside them, and `ondevice-sora models convert` turns the three
 * into a model folder. Reported per component: checkpoint and output bytes, the seconds of its blocks (from the
 * converter's per-unit lines), the slowest unit, and the peak RSS of the converter process sampled from outside
 * (/proc/<pid>/status every 200 ms: VmRSS, and RssAnon, which excludes the memory-mapped checkpoint pages the kernel
 * can drop). Each component's files are deleted before the next, so the disk needs room for one component twice.
 *
 *   npm run measure:convert [-- --components t5,stdit,vae] [--dtype float32|float16] [--work DIR] [--out FILE] [--smoke]
 *
 * Writes bench-results/conversion.json. Heavy: T5-XXL is 19 GB of checkpoint and 19 GB of ONNX; run it under nice.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Component } from '../src/model/contract.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PYTHON = process.env.ONDEVICE_SORA_PYTHON ?? '/usr/bin/python3';
const SAMPLE_MS = 200;
const FULL: Readonly<Record<Component, string>> = { t5: 't5-v1_1-xxl', stdit: 'STDiT3-XL/2', vae: 'OpenSora-VAE-v1.2' };
const FOLDERS: Readonly<Record<Component, string>> = { t5: 't5-v1_1-xxl', stdit: 'OpenSora-STDiT-v3', vae: 'OpenSora-VAE-v1.2' };
const PREFIX: Readonly<Record<Component, string>> = { t5: 't5', stdit: 'stdit3_', vae: 'vae_' };

interface Peak {
  rss: number;
  anon: number;
}

async function statusOf(pid: number): Promise<{ rss: number; anon: number; ppid: number } | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: kib('VmRSS'), anon: kib('RssAnon'), ppid: Number(/^PPid:\s+(\d+)/m.exec(text)?.[1] ?? 0) };
}

/** Peak RSS of every process below `root` (the CLI's Python child), sampled until `done` resolves. */
async function samplePeak(root: number, done: Promise<unknown>): Promise<Peak> {
  const peak: Peak = { rss: 0, anon: 0 };
  let finished = false;
  void done.finally(() => (finished = true));
  while (!finished) {
    const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
    const parents = new Map<number, number>();
    const statuses = new Map<number, { rss: number; anon: number }>();
    for (const pid of pids) {
      const status = await statusOf(pid);
      if (status === undefined) continue;
      parents.set(pid, status.ppid);
      statuses.set(pid, status);
    }
    const below = (pid: number): boolean => {
      for (let p = parents.get(pid); p !== undefined && p > 1; p = parents.get(p)) if (p === root) return true;
      return false;
    };
    for (const [pid, status] of statuses) {
      if (!below(pid)) continue;
      peak.rss = Math.max(peak.rss, status.rss);
      peak.anon = Math.max(peak.anon, status.anon);
    }
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
  }
  return peak;
}

function run(command: string, args: readonly string[], onLine?: (line: string) => void): { pid: number; done: Promise<void> } {
  const child = spawn('nice', ['-n', '10', command, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const lines = (chunk: Buffer): void => {
    tail += chunk.toString();
    const parts = tail.split('\n');
    tail = parts.pop() ?? '';
    for (const line of parts) onLine?.(line);
  };
  child.stdout.on('data', lines);
  child.stderr.on('data', lines);
  const done = new Promise<void>((ok, fail) =>
    child.on('close', (code) => (code === 0 ? ok() : fail(new Error(`${command} ${args.join(' ')} exited ${code}`)))),
  );
  return { pid: child.pid!, done };
}

async function bytesIn(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return total;
}

async function measure(component: Component, work: string, dtype: string, smoke: boolean) {
  const checkpoints = join(work, 'checkpoints');
  const output = join(work, 'model');
  const randoms = (['t5', 'stdit', 'vae'] as const).flatMap((c) => ['--random', `${c}=${c === component && !smoke ? FULL[c] : 'tiny'}`]);
  const started = Date.now();
  const writer = run(PYTHON, [join(ROOT, 'scripts', 'make_upstream_checkpoints.py'), '--out', checkpoints, ...randoms, '--seed', '1']);
  const writerPeak = await Promise.all([samplePeak(process.pid, writer.done), writer.done]).then(([peak]) => peak);
  const writeSeconds = (Date.now() - started) / 1000;
  const units: { at: number; blocks: string }[] = [];
  const dirs = (['stdit', 't5', 'vae'] as const).map((c) => join(checkpoints, FOLDERS[c]));
  const cli = run(process.execPath, [join(ROOT, 'bin', 'ondevice-sora'), 'models', 'convert', ...dirs, '-o', output, '--dtype', dtype, '--python', PYTHON], (line) => {
    const unit = /^convert \d+\/\d+ (.+)$/.exec(line);
    if (unit !== null) units.push({ at: Date.now(), blocks: unit[1]! });
    else if (line.startsWith('error')) process.stderr.write(`${line}\n`);
  });
  const convertStart = Date.now();
  const [peak] = await Promise.all([samplePeak(cli.pid, cli.done), cli.done]);
  const end = Date.now();
  units.push({ at: end, blocks: '(end)' });
  const durations = units.slice(0, -1).map((unit, i) => ({ blocks: unit.blocks, seconds: (units[i + 1]!.at - unit.at) / 1000 }));
  const own = durations.filter((d) => d.blocks.startsWith(PREFIX[component]));
  const result = {
    component,
    config: smoke ? 'tiny' : FULL[component],
    dtype,
    checkpointBytes: await bytesIn(join(checkpoints, FOLDERS[component])),
    outputBytes: await bytesIn(output),
    writeCheckpointSeconds: writeSeconds,
    writerPeakRssBytes: writerPeak.rss,
    convertSeconds: (end - convertStart) / 1000,
    componentSeconds: own.reduce((sum, d) => sum + d.seconds, 0),
    units: own.length,
    slowestUnit: own.reduce((a, b) => (b.seconds > a.seconds ? b : a), { blocks: '', seconds: 0 }),
    peakRssBytes: peak.rss,
    peakRssAnonBytes: peak.anon,
  };
  await rm(work, { recursive: true, force: true });
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      components: { type: 'string', default: 'vae,stdit,t5' },
      dtype: { type: 'string', default: 'float32' },
      work: { type: 'string' },
      out: { type: 'string', default: join(ROOT, 'bench-results', 'conversion.json') },
      // Tiny weights for the measured component too: checks this script in seconds.
      smoke: { type: 'boolean', default: false },
    },
  });
  const components = values.components.split(',') as Component[];
  const base = values.work === undefined ? await mkdtemp(join(tmpdir(), 'sora-measure-')) : resolve(values.work);
  await mkdir(base, { recursive: true });
  const fs = await statfs(base);
  process.stderr.write(`work in ${base}: ${((fs.bavail * fs.bsize) / 2 ** 30).toFixed(1)} GiB free\n`);
  const results = [];
  try {
    for (const component of components) {
      process.stderr.write(`${component}: writing ${FULL[component]} checkpoints, converting…\n`);
      const result = await measure(component, join(base, component), values.dtype, values.smoke);
      process.stderr.write(`${JSON.stringify(result)}\n`);
      results.push(result);
      await mkdir(dirname(values.out), { recursive: true });
      const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), date: new Date().toISOString() };
      await writeFile(values.out, `${JSON.stringify({ machine, results }, null, 2)}\n`);
    }
  } finally {
    if (values.work === undefined) await rm(base, { recursive: true, force: true });
  }
}

await main();
