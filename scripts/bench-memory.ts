/**
 * Benchmark of the memory budget (not a test): `generate` through the built CLI at several `--memory-budget`s, each
 * run's RSS sampled from outside every 2 ms (scripts/rss-sampler.ts), plus one run without a budget for reference.
 * Writes bench-results/memory.json and prints a table: budget, outcome, peak RSS sampled from outside, seconds.
 *
 *   npm run bench:memory [-- --synthetic DIR] [--out FILE]
 *
 * Models: models/shapes at its defaults (64×64, 51 frames) with 10 steps, and a paper-width synthetic model
 * (STDiT3-XL/2 width, 2 block pairs, ~170 MB per block) at 128×128, 17 frames, 4 steps. Without --synthetic that
 * model is made by `models make-synthetic --preset opensora-1.2 --depth 2` into a temporary folder and deleted
 * afterwards; it is skipped, saying why, when Python with torch and onnx is missing. `npm run bench` runs this too.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { formatBytes, memoryBudgetFlag } from '../src/pipeline/memory-budget.js';
import { runSampled } from './rss-sampler.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'ondevice-sora');
const PROMPT = 'a red circle moving up on a black background';

export interface BudgetCase {
  readonly name: string;
  readonly model: string;
  /** `generate` flags besides the model, prompt, output and budget. */
  readonly flags: readonly string[];
  readonly budgets: readonly string[];
}

export interface BudgetRun {
  /** The flag as given; null for the reference run without a budget. */
  readonly budget: string | null;
  readonly budgetBytes: number | null;
  readonly exitCode: number;
  /** Highest VmRSS sampled from outside, and the highest of that and the VmHWM read meanwhile. */
  readonly sampledPeak: number;
  readonly peakRss: number;
  readonly samples: number;
  readonly withinBudget: boolean | null;
  /** The tool's own figure (sidecar), when the run finished. */
  readonly reportedPeak: number | null;
  readonly seconds: number;
  /** The one-line error of a refused run. */
  readonly error: string | null;
}

export function standardCases(synthetic: string | undefined): BudgetCase[] {
  const shapes: BudgetCase = {
    name: 'models/shapes, 64x64, 51 frames, 10 steps',
    model: join(ROOT, 'models', 'shapes'),
    flags: ['--steps', '10'],
    budgets: ['200M', '250M', '300M'],
  };
  if (synthetic === undefined) return [shapes];
  const paper: BudgetCase = {
    name: 'synthetic opensora-1.2 --depth 2 (hidden 1152), 128x128, 17 frames, 4 steps',
    model: synthetic,
    flags: ['--resolution', '128x128', '--steps', '4'],
    budgets: ['450M', '600M', '1G'],
  };
  return [shapes, paper];
}

async function runOnce(testCase: BudgetCase, budget: string | null, scratch: string): Promise<BudgetRun> {
  const out = join(scratch, `run-${Date.now()}-${Math.random().toString(36).slice(2)}.mp4`);
  const args = ['generate', PROMPT, '-o', out, '--model', testCase.model, '--seed', '42', '--json', '--quiet', ...testCase.flags];
  if (budget !== null) args.push('--memory-budget', budget);
  const start = performance.now();
  const run = await runSampled(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } });
  const seconds = (performance.now() - start) / 1000;
  const budgetBytes = budget === null ? null : budgetOf(budget);
  let reportedPeak: number | null = null;
  if (run.code === 0) reportedPeak = (JSON.parse(run.stdout) as { memory: { peakRss: number } }).memory.peakRss;
  await rm(out, { force: true });
  await rm(out.replace(/\.mp4$/, '.json'), { force: true });
  return {
    budget,
    budgetBytes,
    exitCode: run.code,
    sampledPeak: run.sampledPeak,
    peakRss: run.peakRss,
    samples: run.samples,
    withinBudget: budgetBytes === null ? null : run.peakRss <= budgetBytes,
    reportedPeak,
    seconds,
    error: run.code === 0 ? null : (run.stderr.trim().split('\n').at(-1) ?? null),
  };
}

function budgetOf(flag: string): number {
  const spec = memoryBudgetFlag.parse(flag);
  if (spec.kind !== 'absolute') throw new Error(`${flag}: the benchmark takes absolute budgets`);
  return spec.bytes;
}

/** Every case: a reference run without a budget, then each budget. */
export async function runMemoryBench(cases: readonly BudgetCase[], outFile: string): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'ondevice-sora-bench-memory-'));
  const results: { name: string; model: string; flags: readonly string[]; runs: BudgetRun[] }[] = [];
  try {
    for (const testCase of cases) {
      console.log(`\n== ${testCase.name}`);
      const runs: BudgetRun[] = [];
      for (const budget of [null, ...testCase.budgets]) {
        const run = await runOnce(testCase, budget, scratch);
        runs.push(run);
        console.log(describe(run));
      }
      results.push({ name: testCase.name, model: testCase.model, flags: testCase.flags, runs });
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  await mkdir(dirname(outFile), { recursive: true });
  const report = { createdAt: new Date().toISOString(), sampler: 'VmRSS and VmHWM of /proc/<pid>/status every 2 ms', cases: results };
  await writeFile(outFile, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwrote ${outFile}`);
}

function describe(run: BudgetRun): string {
  const budget = run.budget === null ? 'no budget' : `--memory-budget ${run.budget}`;
  const outcome = run.exitCode === 0 ? 'done' : `exit ${run.exitCode}`;
  const within = run.withinBudget === null ? '' : run.withinBudget ? ' (within)' : ' (OVER THE BUDGET)';
  const error = run.error === null ? '' : `\n    ${run.error}`;
  return `${budget.padEnd(22)} ${outcome.padEnd(7)} peak RSS ${formatBytes(run.peakRss)}${within}, ${run.seconds.toFixed(1)} s${error}`;
}

/** Runs the CLI with its output passed through (progress shows on a terminal); resolves with the exit status. */
export function cli(args: readonly string[]): Promise<number> {
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('close', (code) => done(code ?? 1));
  });
}

/** A paper-width synthetic model made into `scratch`; undefined, saying why, when Python cannot make it. */
export async function paperWidthModel(scratch: string): Promise<string | undefined> {
  const model = join(scratch, 'model');
  const made = await cli(['models', 'make-synthetic', '--preset', 'opensora-1.2', '--depth', '2', '-o', model]);
  if (made === ERROR_EXIT_CODES.DEPENDENCY) {
    console.log('skipped the synthetic model: Python with torch and onnx is not available (see the error above)');
    return undefined;
  }
  if (made !== 0) throw new Error(`models make-synthetic exited with ${made}`);
  return model;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { synthetic: { type: 'string' }, out: { type: 'string' } } });
  const outFile = resolve(values.out ?? join(ROOT, 'bench-results', 'memory.json'));
  if (values.synthetic !== undefined) {
    await readFile(join(values.synthetic, 'manifest.json')); // fails with the path when it is not a model folder
    await runMemoryBench(standardCases(resolve(values.synthetic)), outFile);
    return;
  }
  const scratch = await mkdtemp(join(tmpdir(), 'ondevice-sora-bench-memory-model-'));
  try {
    await runMemoryBench(standardCases(await paperWidthModel(scratch)), outFile);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  });
}
