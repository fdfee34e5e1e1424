/**
 * Benchmark of CI-DL (not a test): STDiT time per denoising step with cold block loads, for the scheduler with CI
 * and DL on, each alone, and neither (load, run, unload every block in turn), next to the overlap bound
 * max(Σ run, Σ load of the non-resident blocks), plus each setting's peak RSS. Writes bench-results/cidl.json.
 *
 *   npm run bench:cidl [-- --model DIR] [--steps 4] [--reps 2] [--budget 2G] [--resolution 128x128] [--out FILE]
 *                         [--graph-cache DIR] [--copied-weights]
 *
 * --graph-cache makes sessions from optimised graphs kept in DIR (onnx-graph-cache.ts; the first load of each block
 * writes them); the scheduler drops and prefetches the entries' files as it does the model's (Backend.blockFiles).
 * Blocks are set up as `generate` sets them up where they stream under a budget (session.ts, memory-estimates.ts
 * budgetHoldsComponent): no activation arenas, weights mapped from their files; --copied-weights copies and prepacks
 * them instead, as before.
 *
 * Without --model, a paper-shaped STDiT (28 block pairs, hidden 1152, ~170 MB of random fp32 weights per block,
 * ~4.8 GB in all) is made by scripts/make_synthetic_model.py into a temporary folder and deleted afterwards.
 * Each setting runs in its own process, so its peak RSS is its own, and starts with the model's files dropped from
 * the page cache; the scheduler drops a streamed block's files after each turn, so every reload reads the disk.
 * Step 0 loads every block and is reported apart. Step times are the minimum (least disturbed by other work on the
 * machine; the ratios use it) and the median over the later steps of every repetition; the bound takes Σ run and
 * the cold load times from the sequential setting, where nothing overlaps.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { errorMessage, SoraError } from '../src/errors.js';
import { loadModel } from '../src/model/manifest.js';
import { evictFile } from '../src/native/memory.js';
import { CidlScheduler, scheduledBlocks, type CidlReport } from '../src/pipeline/ci-dl.js';
import { formatBytes, memoryBudgetFlag, processPeakRss, resolveBudget } from '../src/pipeline/memory-budget.js';
import { enableGarbageCollection } from '../src/runtime/garbage-collection.js';
import { latentShapeFor } from '../src/pipeline/latent.js';
import { runGeometry } from '../src/pipeline/memory-estimates.js';
import { gaussianNoise } from '../src/pipeline/rng.js';
import { sample } from '../src/pipeline/sampler.js';
import { StditRunner } from '../src/pipeline/stdit-runner.js';
import { float32Tensor } from '../src/pipeline/tensors.js';
import { recordedBackend, Timeline, type TimelineEvent } from '../src/pipeline/timeline.js';
import { samplingTimesteps } from '../src/pipeline/timesteps.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
/** The paper-shaped model takes ~4.8 GB; leave room for the page cache. */
const DISK_NEEDED = 6 * 2 ** 30;
const FRAMES = 17;
const SEED = 7;

const SETTINGS = {
  'ci-dl': { concurrent: true, dynamicLoading: true },
  ci: { concurrent: true, dynamicLoading: false },
  dl: { concurrent: false, dynamicLoading: true },
  sequential: { concurrent: false, dynamicLoading: false },
} as const;
type SettingName = keyof typeof SETTINGS;

const ArgsSchema = z.object({
  model: z.string().min(1, 'must name a model folder').optional(),
  steps: z.string().regex(/^\d+$/, 'must be an integer ≥ 2').transform(Number).pipe(z.number().min(2, 'must be ≥ 2')),
  reps: z.string().regex(/^\d+$/, 'must be a positive integer').transform(Number).pipe(z.number().min(1, 'must be ≥ 1')),
  budget: memoryBudgetFlag,
  resolution: z
    .string()
    .regex(/^\d+x\d+$/, 'must be WIDTHxHEIGHT, multiples of 16')
    .transform((text) => text.split('x').map(Number) as [number, number])
    .refine(([w, h]) => w > 0 && h > 0 && w % 16 === 0 && h % 16 === 0, 'must be WIDTHxHEIGHT, multiples of 16'),
  out: z.string().min(1, 'must name a file'),
  'graph-cache': z.string().min(1, 'must name a folder').optional(),
  'copied-weights': z.boolean().optional(),
  child: z.enum(Object.keys(SETTINGS) as [SettingName, ...SettingName[]]).optional(),
});
/** The flags as given (`raw`, passed on to each setting's process) and checked. */
type Args = z.infer<typeof ArgsSchema> & { readonly raw: Readonly<Record<string, string | boolean | undefined>> };

/** What one setting's process reports. */
interface ChildResult {
  readonly setting: SettingName;
  /** Timeline time at the end of each step; step 0 starts at `startMs`. */
  readonly startMs: number;
  readonly stepEndsMs: readonly number[];
  readonly events: readonly TimelineEvent[];
  readonly report: CidlReport;
  readonly peakRss: number;
}

function parseArguments(): Args {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      steps: { type: 'string', default: '4' },
      reps: { type: 'string', default: '2' },
      budget: { type: 'string', default: '2G' },
      resolution: { type: 'string', default: '128x128' },
      out: { type: 'string', default: 'bench-results/cidl.json' },
      'graph-cache': { type: 'string' },
      'copied-weights': { type: 'boolean' },
      child: { type: 'string' },
    },
  });
  const parsed = ArgsSchema.safeParse(values);
  if (parsed.success) return { ...parsed.data, raw: values };
  const issue = parsed.error.issues[0]!;
  throw new SoraError('USAGE', `--${String(issue.path[0])}: ${issue.message}`);
}

// ------------------------------------------------------------------------------------------------
// One setting, in its own process

async function runSetting(args: Args & { model: string; child: SettingName }): Promise<ChildResult> {
  const model = await loadModel(args.model);
  const blocks = scheduledBlocks(model, 'stdit');
  for (const block of blocks) for (const file of block.files) await evictFile(file.path);
  enableGarbageCollection(); // as `generate` does under a budget, before the workers start
  const graphCache = args['graph-cache'];
  const backend = new OnnxBackend({
    activationArena: false,
    ...(graphCache === undefined ? {} : { graphCacheDir: resolve(graphCache) }),
  });
  const timeline = new Timeline();
  const [width, height] = args.resolution;
  const latent = latentShapeFor({ numFrames: FRAMES, width, height });
  const provider = new CidlScheduler(recordedBackend(backend, timeline), blocks, {
    ...SETTINGS[args.child],
    budget: resolveBudget(args.budget),
    label: 'stdit',
    timeline,
    geometry: runGeometry(model, latent, 'stdit'),
    mapWeights: args['copied-weights'] !== true,
  });
  const channels = Number(model.architecture.stdit.caption_channels);
  const mask = new Float32Array(300).fill(1, 0, 12);
  const text = {
    y: float32Tensor([1, 1, 300, channels], gaussianNoise(1, 300 * channels)),
    yNull: float32Tensor([1, 1, 300, channels], gaussianNoise(2, 300 * channels)),
    mask: float32Tensor([1, 300], mask),
  };
  const runner = new StditRunner({ provider, depth: model.architecture.stdit.depth, latent, text, fps: 24, width, height });
  const stepEndsMs: number[] = [];
  const startMs = timeline.now();
  try {
    await sample(runner, gaussianNoise(SEED, 4 * latent.frames * latent.height * latent.width), {
      timesteps: samplingTimesteps(args.steps, 'opensora', { numFrames: FRAMES, width, height }),
      cfgScale: 7,
      onStep: () => stepEndsMs.push(timeline.now()),
    });
  } finally {
    await provider.close();
    await backend.close();
  }
  return { setting: args.child, startMs, stepEndsMs, events: timeline.events, report: provider.report(), peakRss: processPeakRss() };
}

// ------------------------------------------------------------------------------------------------
// The parent: model, one process per setting, summary

function run(command: string, argv: readonly string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise(Buffer.concat(chunks).toString('utf8'));
      else reject(new SoraError('INTERNAL', `${command} ${argv.join(' ')} exited with ${code}`));
    });
  });
}

async function makePaperModel(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const { bavail, bsize } = await statfs(tmpdir());
  if (bavail * bsize < DISK_NEEDED) {
    throw new SoraError('IO', `${tmpdir()}: ${formatBytes(bavail * bsize)} free, the paper-shaped model needs ${formatBytes(DISK_NEEDED)}`);
  }
  const parent = await mkdtemp(join(tmpdir(), 'ondevice-sora-bench-cidl-'));
  const cleanup = () => rm(parent, { recursive: true, force: true });
  const dir = join(parent, 'model');
  console.log(`making a paper-shaped STDiT in ${dir} (several minutes)`);
  try {
    await run(PYTHON, [join(ROOT, 'scripts/make_synthetic_model.py'), '--out', dir, '--shape', 'paper']);
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { dir, cleanup };
}

async function measure(setting: SettingName, args: Args, model: string): Promise<ChildResult> {
  const argv = [...process.execArgv, fileURLToPath(import.meta.url), '--child', setting, '--model', model];
  for (const flag of ['steps', 'budget', 'resolution'] as const) argv.push(`--${flag}`, String(args.raw[flag]));
  if (args['graph-cache'] !== undefined) argv.push('--graph-cache', args['graph-cache']);
  if (args['copied-weights'] === true) argv.push('--copied-weights');
  const output = await run(process.execPath, argv);
  return JSON.parse(output) as ChildResult;
}

const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0);
const duration = (event: TimelineEvent): number => event.endMs - event.startMs;

interface Timing {
  readonly minMs: number;
  readonly medianMs: number;
}

function timing(samples: readonly number[]): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const medianMs = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { minMs: sorted[0]!, medianMs };
}

interface Step {
  readonly ms: number;
  readonly events: readonly TimelineEvent[];
}

/** Each step's wall time and events; an event belongs to the step in which it started. */
function stepsOf(result: ChildResult): Step[] {
  const starts = [result.startMs, ...result.stepEndsMs.slice(0, -1)];
  return starts.map((start, index) => {
    const end = result.stepEndsMs[index]!;
    return { ms: end - start, events: result.events.filter((event) => event.startMs >= start && event.startMs < end) };
  });
}

const later = (results: readonly ChildResult[]): Step[] => results.flatMap((result) => stepsOf(result).slice(1));
const total = (step: Step, kind: TimelineEvent['kind']): number =>
  sum(step.events.filter((event) => event.kind === kind).map(duration));

/**
 * The sequential setting overlaps nothing, so its steps give clean costs: Σ run of a step, and each block's (cold)
 * load time; the least disturbed value of each, as for the step times.
 */
function cleanCosts(sequential: readonly ChildResult[]): { runMs: number; loadMs: Map<string, number> } {
  const steps = later(sequential);
  const loadMs = new Map<string, number>();
  for (const event of steps.flatMap((step) => step.events).filter((e) => e.kind === 'load')) {
    loadMs.set(event.block, Math.min(loadMs.get(event.block) ?? Number.POSITIVE_INFINITY, duration(event)));
  }
  return { runMs: Math.min(...steps.map((step) => total(step, 'run'))), loadMs };
}

function summarise(results: Record<SettingName, ChildResult[]>) {
  const clean = cleanCosts(results.sequential);
  const sequentialMs = timing(later(results.sequential).map((step) => step.ms));
  return Object.fromEntries(
    (Object.keys(SETTINGS) as SettingName[]).map((name) => {
      const runs = results[name];
      const { report } = runs.at(-1)!;
      const stepMs = timing(later(runs).map((step) => step.ms));
      const resident = new Set(report.resident);
      const streamedLoadMs = sum([...clean.loadMs].filter(([block]) => !resident.has(block)).map(([, ms]) => ms));
      // What a step cannot beat: its runs back to back, or its loads back to back when they take longer; without
      // overlap, both one after the other.
      const boundMs = report.concurrent ? Math.max(clean.runMs, streamedLoadMs) : clean.runMs + streamedLoadMs;
      return [
        name,
        {
          ...SETTINGS[name],
          concurrentInEffect: report.concurrent,
          resident: report.resident.length,
          blocksPerStep: report.blocksPerCycle.at(-1)!,
          loadsPerStep: runs.map((run) => run.report.loadsPerCycle.slice(1)),
          stepMs,
          step0Ms: runs.map((run) => stepsOf(run)[0]!.ms),
          stepsMs: runs.map((run) => stepsOf(run).map((step) => step.ms)),
          sumRunMs: clean.runMs,
          sumLoadNonResidentMs: streamedLoadMs,
          boundMs,
          boundOverStep: boundMs / stepMs.minMs,
          speedupOverSequential: sequentialMs.minMs / stepMs.minMs,
          peakRss: Math.max(...runs.map((run) => run.peakRss)),
          budget: report.budget,
          workingSet: report.workingSet,
          loadOverhead: report.loadOverhead,
        },
      ];
    }),
  );
}

function onnxRuntimeVersion(): string {
  return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
}

async function main(): Promise<void> {
  const args = parseArguments();
  if (args.child !== undefined) {
    if (args.model === undefined) throw new SoraError('USAGE', '--child needs --model');
    process.stdout.write(JSON.stringify(await runSetting({ ...args, model: args.model, child: args.child })));
    return;
  }
  const made = args.model === undefined ? await makePaperModel() : undefined;
  try {
    const modelDir = made?.dir ?? resolve(args.model!);
    const model = await loadModel(modelDir);
    const names = Object.keys(SETTINGS) as SettingName[];
    const results = Object.fromEntries(names.map((name) => [name, [] as ChildResult[]])) as Record<SettingName, ChildResult[]>;
    // Repetitions take the settings in turn, so a change in the machine's load hits every setting alike.
    for (let rep = 1; rep <= args.reps; rep++) {
      for (const name of names) {
        console.log(`running ${name} (${rep}/${args.reps}) …`);
        results[name].push(await measure(name, args, modelDir));
      }
    }
    const settings = summarise(results);
    const seconds = (ms: number): string => (ms / 1000).toFixed(2);
    for (const [name, s] of Object.entries(settings)) {
      console.log(
        `${name.padEnd(10)} step ${seconds(s.stepMs.minMs)} s (median ${seconds(s.stepMs.medianMs)} s), ` +
          `K ${s.resident}/${s.blocksPerStep}, loads/step ${s.loadsPerStep.flat().join(',')}, ` +
          `bound ${seconds(s.boundMs)} s (bound/step ${s.boundOverStep.toFixed(2)}), ` +
          `×${s.speedupOverSequential.toFixed(2)} vs sequential, peak RSS ${formatBytes(s.peakRss)}`,
      );
    }
    const report = {
      benchmark: 'cidl',
      createdAt: new Date().toISOString(),
      command: ['npm run bench:cidl', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, onnxruntime: onnxRuntimeVersion() },
      model: { name: model.name, stdit: model.architecture.stdit, generated: made !== undefined },
      shape: { resolution: args.resolution.join('x'), frames: FRAMES, steps: args.steps, reps: args.reps },
      weights: args['copied-weights'] === true ? 'copied and prepacked' : 'mapped',
      graphCache: args['graph-cache'] !== undefined,
      settings,
      timelines: Object.fromEntries(Object.entries(results).map(([name, runs]) => [name, runs.map((run) => run.events)])),
    };
    const out = resolve(ROOT, args.out);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`wrote ${out}`);
  } finally {
    await made?.cleanup();
  }
}

try {
  await main();
} catch (error) {
  console.error(`error: ${errorMessage(error)}`);
  process.exitCode = 1;
}
