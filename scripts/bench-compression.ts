/**
 * Benchmark of weight compression (not a test): per setting (fp32, fp16, int8, made by `models compress`), through
 * the built CLI as a user would run it, writes bench-results/compression.json and prints a table.
 *
 *   npm run build && tsx scripts/bench-compression.ts [--synthetic DIR] [--prompts N] [--out FILE]
 *
 * models/shapes: bytes on disk (every file the manifest lists, each once) and of the weight files; load time (the
 * sum of every block's session creation in `bench`) and STDiT step time (warm denoise / model evaluations), each
 * the median of 3 rounds that run the three settings in turn; peak RSS of `generate` sampled from outside (scripts/rss-sampler.ts); strict-eval
 * quality (`eval --configs baseline --prompts N`, 16 by default); and the frames of one 30-step generation against
 * float32's (largest difference of an 8-bit channel, PSNR). A paper-width synthetic model (`--synthetic`, or
 * made by `npm run bench`): bytes, load time and peak RSS only (its weights are random, so quality means nothing).
 * The CPU may be shared: ratios within one run are what counts.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { formatBytes } from '../src/pipeline/memory-budget.js';
import { frameDifference, readPngFrames, type FrameDifference } from './frame-difference.js';
import { runSampled, type SampledRun } from './rss-sampler.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'ondevice-sora');
const PROMPT = 'a red circle moving up on a black background';
const SETTINGS = ['fp32', 'fp16', 'int8'] as const;
type Setting = (typeof SETTINGS)[number];

interface ModelCase {
  readonly name: string;
  readonly model: string;
  /** `bench` and `generate` flags besides the model. */
  readonly flags: readonly string[];
  /** Rounds of `bench --repeat 1` over the three settings in turn (interleaved, so load on the CPU hits all alike). */
  readonly rounds: number;
  /** Eval prompts and frame comparison; off for random weights. */
  readonly quality: boolean;
}

interface Measured {
  readonly setting: Setting;
  readonly dir: string;
  readonly bytes: number;
  readonly weightFileBytes: number;
  readonly loadMs: number;
  readonly loadMsByComponent: Record<string, number>;
  readonly stditStepMs: number;
  readonly peakRss: number;
  readonly quality?: { readonly overall: number; readonly relative: number; readonly criteria: Record<string, number>; readonly prompts: number };
  readonly frames?: FrameDifference;
}

async function run(args: readonly string[]): Promise<SampledRun> {
  const result = await runSampled(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } });
  if (result.code !== 0) throw new Error(`ondevice-sora ${args.join(' ')} exited with ${result.code}: ${result.stderr.trim().split('\n').at(-1)}`);
  return result;
}

interface ManifestFiles {
  readonly tokenizer: { readonly files: readonly { path: string; bytes: number }[] };
  readonly blocks: readonly { readonly files: readonly { path: string; bytes: number; role: string }[] }[];
}

async function folderBytes(dir: string): Promise<{ bytes: number; weightFileBytes: number }> {
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as ManifestFiles;
  const files = [...manifest.tokenizer.files.map((f) => ({ ...f, role: 'tokenizer' })), ...manifest.blocks.flatMap((b) => b.files)];
  const unique = new Map(files.map((f) => [f.path, f]));
  const sum = (role?: string): number => [...unique.values()].filter((f) => role === undefined || f.role === role).reduce((s, f) => s + f.bytes, 0);
  return { bytes: sum(), weightFileBytes: sum('weights') };
}

interface BenchReport {
  readonly components: readonly { component: string; load: { medianMs: number } | null }[];
  readonly matrix: readonly { evaluations: number; warm: { denoise: { medianMs: number } } }[];
}

type LoadAndStep = Pick<Measured, 'loadMs' | 'loadMsByComponent' | 'stditStepMs'>;

async function loadAndStep(testCase: ModelCase, dir: string): Promise<LoadAndStep> {
  const args = ['bench', '--model', dir, '--repeat', '1', '--json', '--quiet', ...testCase.flags];
  const report = JSON.parse((await run(args)).stdout) as BenchReport;
  const loadMsByComponent: Record<string, number> = {};
  for (const { component, load } of report.components) {
    if (load !== null) loadMsByComponent[component] = (loadMsByComponent[component] ?? 0) + load.medianMs;
  }
  const baseline = report.matrix[0]!;
  return {
    loadMs: Object.values(loadMsByComponent).reduce((s, ms) => s + ms, 0),
    loadMsByComponent,
    stditStepMs: baseline.warm.denoise.medianMs / baseline.evaluations,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Per setting, the median of its rounds (each component's load time too). */
async function interleavedLoadAndStep(testCase: ModelCase, dirs: Record<Setting, string>): Promise<Record<Setting, LoadAndStep>> {
  const rounds: Record<Setting, LoadAndStep[]> = { fp32: [], fp16: [], int8: [] };
  for (let round = 0; round < testCase.rounds; round += 1) {
    for (const setting of SETTINGS) rounds[setting].push(await loadAndStep(testCase, dirs[setting]));
  }
  const summary = (runs: LoadAndStep[]): LoadAndStep => ({
    loadMs: median(runs.map((r) => r.loadMs)),
    loadMsByComponent: Object.fromEntries(Object.keys(runs[0]!.loadMsByComponent).map((c) => [c, median(runs.map((r) => r.loadMsByComponent[c]!))])),
    stditStepMs: median(runs.map((r) => r.stditStepMs)),
  });
  return { fp32: summary(rounds.fp32), fp16: summary(rounds.fp16), int8: summary(rounds.int8) };
}

async function peakRss(testCase: ModelCase, dir: string, scratch: string): Promise<number> {
  const out = join(scratch, `rss-${Date.now()}.mp4`);
  const result = await run(['generate', PROMPT, '--model', dir, '-o', out, '--seed', '42', '--quiet', ...testCase.flags]);
  return result.peakRss;
}

interface EvalReport {
  readonly summary: readonly { overall: number; relative: number; background: number; colour: number; shape: number; motion: number; consistency: number }[];
}

async function quality(dir: string, prompts: number): Promise<NonNullable<Measured['quality']>> {
  const report = JSON.parse((await run(['eval', '--model', dir, '--configs', 'baseline', '--prompts', String(prompts), '--json', '--quiet'])).stdout) as EvalReport;
  const { overall, relative, background, colour, shape, motion, consistency } = report.summary[0]!;
  return { overall, relative, criteria: { background, colour, shape, motion, consistency }, prompts };
}

async function frames(dir: string, folder: string): Promise<Buffer[]> {
  await run(['generate', PROMPT, '--model', dir, '-o', folder, '--format', 'frames', '--seed', '42', '--quiet']);
  return readPngFrames(folder);
}

async function measureCase(testCase: ModelCase, prompts: number, scratch: string): Promise<Measured[]> {
  const dirs: Record<Setting, string> = { fp32: testCase.model, fp16: join(scratch, 'fp16'), int8: join(scratch, 'int8') };
  for (const setting of ['fp16', 'int8'] as const) await run(['models', 'compress', testCase.model, '--weights', setting, '-o', dirs[setting], '--quiet']);
  const timed = await interleavedLoadAndStep(testCase, dirs);
  const results: Measured[] = [];
  let reference: Buffer[] | undefined;
  for (const setting of SETTINGS) {
    const dir = dirs[setting];
    const measured: Measured = {
      setting,
      dir,
      ...(await folderBytes(dir)),
      ...timed[setting],
      peakRss: await peakRss(testCase, dir, scratch),
    };
    let extra: Pick<Measured, 'quality' | 'frames'> = {};
    if (testCase.quality) {
      const own = await frames(dir, join(scratch, `frames-${setting}`));
      reference ??= own;
      extra = { quality: await quality(dir, prompts), frames: frameDifference(reference, own) };
    }
    results.push({ ...measured, ...extra });
    console.log(describe({ ...measured, ...extra }));
  }
  return results;
}

function describe(m: Measured): string {
  const quality = m.quality === undefined ? '' : `, eval ${m.quality.overall.toFixed(3)} (${m.quality.prompts} prompts)`;
  const frames = m.frames === undefined ? '' : `, frames max ${m.frames.maxAbs} PSNR ${Number.isFinite(m.frames.psnr) ? m.frames.psnr.toFixed(1) : 'inf'} dB`;
  return (
    `${m.setting}: ${formatBytes(m.bytes)} (weights ${formatBytes(m.weightFileBytes)}), load ${m.loadMs.toFixed(0)} ms, ` +
    `STDiT step ${m.stditStepMs.toFixed(1)} ms, peak RSS ${formatBytes(m.peakRss)}${quality}${frames}`
  );
}

export function compressionCases(synthetic: string | undefined): ModelCase[] {
  const shapes: ModelCase = {
    name: 'models/shapes, 64x64, 51 frames, 10 steps (frames and eval: 30 steps)',
    model: join(ROOT, 'models', 'shapes'),
    flags: ['--steps', '10'],
    rounds: 3,
    quality: true,
  };
  if (synthetic === undefined) return [shapes];
  const paper: ModelCase = {
    name: 'synthetic opensora-1.2 --depth 2 (hidden 1152), 128x128, 17 frames, 2 steps',
    model: synthetic,
    flags: ['--resolution', '128x128', '--steps', '2'],
    rounds: 2,
    quality: false,
  };
  return [shapes, paper];
}

export async function runCompressionBench(cases: readonly ModelCase[], outFile: string, prompts = 16): Promise<void> {
  const results: { name: string; model: string; flags: readonly string[]; settings: Measured[] }[] = [];
  for (const testCase of cases) {
    console.log(`\n== ${testCase.name}`);
    const scratch = await mkdtemp(join(tmpdir(), 'ondevice-sora-bench-compression-'));
    try {
      const settings = await measureCase(testCase, prompts, scratch);
      results.push({ name: testCase.name, model: testCase.model, flags: testCase.flags, settings: settings.map((m) => ({ ...m, dir: m.setting === 'fp32' ? m.dir : `(temporary) ${m.setting}` })) });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  await mkdir(dirname(outFile), { recursive: true });
  const report = {
    createdAt: new Date().toISOString(),
    command: `ondevice-sora models compress <model> --weights fp16|int8 -o <dir>; then bench, generate (RSS sampled from outside), eval --prompts ${prompts}`,
    cases: results,
  };
  await writeFile(outFile, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwrote ${outFile}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { synthetic: { type: 'string' }, out: { type: 'string' }, prompts: { type: 'string' } } });
  const outFile = resolve(values.out ?? join(ROOT, 'bench-results', 'compression.json'));
  const synthetic = values.synthetic === undefined ? undefined : resolve(values.synthetic);
  await runCompressionBench(compressionCases(synthetic), outFile, Number(values.prompts ?? 16));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  });
}
