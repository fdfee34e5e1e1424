/**
 * Benchmark of the two sampler speed-ups (not a test): STDiT time per step with ST vs TDTM blocks next to the
 * analytic FLOP-ratio bound for the same shape, and total denoising time of 30 steps with LPL 15 (16 evaluations)
 * vs all 30. Prints a summary and writes JSON (default bench-results/lpl-tdtm.json).
 *
 *   npm run bench:policies [-- --reps 5] [-- --lpl-reps 3] [-- --model DIR [--extrapolate-depth 28]]
 *
 * Shapes: the shipped tiny model at its default size (17 frames 256², T = 5) and at the paper's token count (68
 * frames 256², T = 20, N = 5120); with --model, that model at 68 frames 256² too — e.g. a paper-width STDiT from
 * `scripts/make_synthetic_model.py --shape paper --depth 1`, whose per-step time --extrapolate-depth 28 scales to
 * the paper's 28 block pairs from the measured pair time (every pair has the same shape and cost).
 *
 * Times are per variant the minimum and the median of the repetitions: on a shared machine the minimum is the run
 * least disturbed by other work, so the ratios are taken from minima; the medians show the spread.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { errorMessage, SoraError } from '../src/errors.js';
import { createLogger } from '../src/logging.js';
import { blockSource, loadModel, type Model } from '../src/model/manifest.js';
import type { BlockVariant } from '../src/pipeline/attention-mask.js';
import { ResidentBlockProvider } from '../src/pipeline/block-provider.js';
import { gaussianNoise } from '../src/pipeline/rng.js';
import { sample } from '../src/pipeline/sampler.js';
import { StditRunner } from '../src/pipeline/stdit-runner.js';
import { float32Tensor, type Float32Tensor } from '../src/pipeline/tensors.js';
import { samplingTimesteps } from '../src/pipeline/timesteps.js';
import { PRESETS, stepPolicies, type Preset } from '../src/policies/presets.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { fromBytes } from '../src/runtime/tensor.js';
import type { TextEncoding } from '../src/text/text-encoder.js';
import { stepFlops, type StditFlopShape } from '../src/bench/stdit-flops.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STEPS = 30;
const LEAP_STEP = 15;
const SEED = 7;
/** Latent of 256² pixels. */
const SIDE = 32;

const count = (message: string) =>
  z.string().regex(/^\d+$/, message).transform(Number).pipe(z.number().min(1, message));

const ArgsSchema = z.object({
  reps: count('must be a positive integer'),
  lplReps: count('must be a positive integer'),
  out: z.string().min(1, 'must name a file'),
  model: z.string().min(1, 'must name a model folder').optional(),
  extrapolateDepth: count('must be a positive integer').optional(),
});

/** The STDiT numbers the FLOP count needs, from the manifest. */
const ArchitectureSchema = z.object({
  hidden_size: z.number().int().positive(),
  mlp_ratio: z.number().positive(),
  depth: z.number().int().positive(),
  caption_channels: z.number().int().positive(),
  in_channels: z.number().int().positive(),
  out_channels: z.number().int().positive(),
  patch_size: z.tuple([z.literal(1), z.number().int().positive(), z.number().int().positive()]),
  freq_embed_size: z.number().int().positive(),
});
type Architecture = z.infer<typeof ArchitectureSchema>;

/** Outside input (flags, manifests) checked with zod; a problem stops the benchmark with one line. */
function parsed<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  throw new SoraError('USAGE', `${what}: ${issue.path.join('.')}: ${issue.message}`);
}

/** One model at one latent size, ready to denoise. */
interface Case {
  readonly name: string;
  readonly model: Model;
  readonly architecture: Architecture;
  readonly frames: number;
  readonly text: TextEncoding;
  /** Block pairs the per-step time and FLOPs are reported for; beyond the model's own, pairs are extrapolated. */
  readonly reportedDepth: number;
}

interface Timing {
  readonly minMs: number;
  readonly medianMs: number;
  readonly samplesMs: readonly number[];
}

function timing(samplesMs: readonly number[]): Timing {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const medianMs = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { minMs: sorted[0]!, medianMs, samplesMs };
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await work();
  return [value, performance.now() - start];
}

/** The stored T5 encoding of a real prompt (sampler golden data): 64 channels, the tiny T5's width. */
async function storedText(): Promise<TextEncoding> {
  const golden = JSON.parse(await readFile(join(ROOT, 'test/fixtures/golden/sampler-opensora.json'), 'utf8')) as {
    inputs: Record<string, { shape: number[]; data: string }>;
  };
  const tensor = (name: string): Float32Tensor => {
    const { shape, data } = golden.inputs[name]!;
    return fromBytes('float32', shape, Buffer.from(data, 'base64')) as Float32Tensor;
  };
  return { y: tensor('y'), yNull: tensor('yNull'), mask: tensor('mask') };
}

/** Captions of another width: random values, as many valid tokens as the stored prompt. */
function textFor(channels: number, stored: TextEncoding): TextEncoding {
  if (stored.y.dims[3] === channels) return stored;
  const dims = [1, 1, 300, channels];
  return {
    y: float32Tensor(dims, gaussianNoise(1, 300 * channels)),
    yNull: float32Tensor(dims, gaussianNoise(2, 300 * channels)),
    mask: stored.mask,
  };
}

async function caseFor(dir: string, frames: number, stored: TextEncoding, depth?: number): Promise<Case> {
  const model = await loadModel(dir);
  const architecture = parsed(ArchitectureSchema, model.architecture.stdit, `${model.manifestPath}: architecture.stdit`);
  const reportedDepth = Math.max(depth ?? architecture.depth, architecture.depth);
  const depthNote = reportedDepth > architecture.depth ? `, ${architecture.depth} pair(s) run, ${reportedDepth} reported` : '';
  return {
    name: `${model.name} (hidden ${architecture.hidden_size}), ${(frames / 5) * 17} frames 256² (T=${frames})${depthNote}`,
    model,
    architecture,
    frames,
    text: textFor(architecture.caption_channels, stored),
    reportedDepth,
  };
}

/** Runs `work` with a fresh backend and provider over the case's STDiT blocks. */
async function withRunner<T>(item: Case, work: (runner: StditRunner, backend: OnnxBackend) => Promise<T>): Promise<T> {
  const backend = new OnnxBackend();
  const blocks = item.model.blocks.filter((block) => block.component === 'stdit');
  const provider = new ResidentBlockProvider(backend, new Map(blocks.map((block) => [block.name, blockSource(block)])));
  try {
    const runner = new StditRunner({
      provider,
      depth: item.architecture.depth,
      latent: latentOf(item),
      text: item.text,
      fps: 24,
      width: SIDE * 8,
      height: SIDE * 8,
    });
    return await work(runner, backend);
  } finally {
    await provider.close();
    await backend.close();
  }
}

const latentOf = (item: Case) => ({ channels: 4, frames: item.frames, height: SIDE, width: SIDE });
const noiseFor = (item: Case) => gaussianNoise(SEED, 4 * item.frames * SIDE * SIDE);

function flopShape(item: Case): StditFlopShape {
  const a = item.architecture;
  return {
    hidden: a.hidden_size,
    mlpRatio: a.mlp_ratio,
    depth: item.reportedDepth,
    captionChannels: a.caption_channels,
    inChannels: a.in_channels,
    outChannels: a.out_channels,
    patch: [a.patch_size[1], a.patch_size[2]],
    freqEmbedSize: a.freq_embed_size,
    frames: item.frames,
    patchesPerFrame: (SIDE / a.patch_size[1]) * (SIDE / a.patch_size[2]),
    captionTokens: item.text.mask.data.reduce((sum, valid) => sum + valid, 0),
  };
}

const VARIANTS = ['st', 'tdtm'] as const;

/**
 * STDiT time per step with each block variant: `reps` runs each after a warm-up (block loads), alternating so a
 * change in machine load hits both alike. Extra reported pairs are added at the measured pair time.
 */
async function benchStep(item: Case, reps: number) {
  const samples = await withRunner(item, async (runner, backend) => {
    const z = noiseFor(item);
    const predict = (variant: BlockVariant) => runner.predict(z, { index: 0, steps: STEPS, t: 500, variant });
    for (const variant of VARIANTS) await predict(variant);
    const steps: Record<BlockVariant, number[]> = { st: [], tdtm: [] };
    for (let rep = 0; rep < reps; rep++) {
      for (const variant of VARIANTS) steps[variant].push((await timed(() => predict(variant)))[1]);
    }
    // Each step's block-pair time, from the backend's own run timings (warm-up dropped).
    const pairs = (variant: BlockVariant) => {
      const prefix = variant === 'st' ? 'stdit3_ST_' : 'stdit3_TDTM_';
      const runs = backend.stats().filter((stats) => stats.name.startsWith(prefix)).map((stats) => stats.runMs.slice(1));
      return Array.from({ length: reps }, (_, rep) => runs.reduce((sum, ms) => sum + ms[rep]!, 0) / runs.length);
    };
    return { steps, pairs: { st: pairs('st'), tdtm: pairs('tdtm') } };
  });
  const extraPairs = item.reportedDepth - item.architecture.depth;
  const step = (variant: BlockVariant) =>
    timing(samples.steps[variant].map((ms, rep) => ms + extraPairs * samples.pairs[variant][rep]!));
  const pair = (variant: BlockVariant) => timing(samples.pairs[variant]);
  const shape = flopShape(item);
  const flops = { st: stepFlops(shape, 'st'), tdtm: stepFlops(shape, 'tdtm') };
  const stepMs = { st: step('st'), tdtm: step('tdtm') };
  const pairMs = { st: pair('st'), tdtm: pair('tdtm') };
  return {
    shape: item.name,
    latent: latentOf(item),
    tokensPerSample: shape.frames * shape.patchesPerFrame,
    captionTokens: shape.captionTokens,
    depth: item.reportedDepth,
    measuredDepth: item.architecture.depth,
    stepMs,
    pairMs,
    speedup: { step: stepMs.st.minMs / stepMs.tdtm.minMs, pair: pairMs.st.minMs / pairMs.tdtm.minMs },
    medianSpeedup: { step: stepMs.st.medianMs / stepMs.tdtm.medianMs, pair: pairMs.st.medianMs / pairMs.tdtm.medianMs },
    flops,
    flopBound: { step: flops.st.step / flops.tdtm.step, pair: flops.st.pair.total / flops.tdtm.pair.total },
  };
}

/** Total time of a 30-step denoising per setting (blocks loaded by a warm-up run, so only sampling is timed). */
async function benchDenoise(item: Case, reps: number) {
  const logger = createLogger('warn');
  const video = { numFrames: (item.frames / 5) * 17, width: SIDE * 8, height: SIDE * 8 };
  const timesteps = samplingTimesteps(STEPS, 'opensora', video);
  const settings: Record<string, Preset> = {
    baseline: PRESETS.baseline,
    [`lpl${LEAP_STEP}`]: { ...PRESETS.baseline, lpl: { mode: 'fixed', step: LEAP_STEP } },
    [`lpl${LEAP_STEP}+tdtm${LEAP_STEP}`]: { ...PRESETS.paper, cidl: false },
  };
  const { samples, evaluations } = await withRunner(item, async (runner) => {
    const noise = noiseFor(item);
    const run = (preset: Preset) =>
      sample(runner, noise, { timesteps, cfgScale: 7, policies: stepPolicies(preset, item.frames, logger) });
    await run(PRESETS.paper); // loads both block variants
    const samples: Record<string, number[]> = Object.fromEntries(Object.keys(settings).map((name) => [name, []]));
    const evaluations: Record<string, number> = {};
    for (let rep = 0; rep < reps; rep++) {
      for (const [name, preset] of Object.entries(settings)) {
        const [result, ms] = await timed(() => run(preset));
        samples[name]!.push(ms);
        evaluations[name] = result.evaluations;
      }
    }
    return { samples, evaluations };
  });
  const denoiseMs = Object.fromEntries(Object.entries(samples).map(([name, ms]) => [name, timing(ms)]));
  const speedup = (pick: (t: Timing) => number) =>
    Object.fromEntries(Object.keys(settings).map((name) => [name, pick(denoiseMs.baseline!) / pick(denoiseMs[name]!)]));
  return {
    shape: item.name,
    steps: STEPS,
    evaluations,
    denoiseMs,
    speedup: speedup((t) => t.minMs),
    medianSpeedup: speedup((t) => t.medianMs),
  };
}

function onnxRuntimeVersion(): string {
  return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
}

const x = (ratio: number) => `×${ratio.toFixed(2)}`;
const ms = (t: Timing) => `${t.minMs.toFixed(0)} ms`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string', default: '5' },
      'lpl-reps': { type: 'string', default: '3' },
      out: { type: 'string', default: 'bench-results/lpl-tdtm.json' },
      model: { type: 'string' },
      'extrapolate-depth': { type: 'string' },
    },
  });
  const args = parsed(
    ArgsSchema,
    { ...values, lplReps: values['lpl-reps'], extrapolateDepth: values['extrapolate-depth'] },
    'arguments',
  );
  const stored = await storedText();
  const tinyDir = join(ROOT, 'models', 'tiny');
  const tiny = [await caseFor(tinyDir, 5, stored), await caseFor(tinyDir, 20, stored)];
  const extra = args.model === undefined ? [] : [await caseFor(resolve(args.model), 20, stored, args.extrapolateDepth)];

  const tdtm = [];
  for (const item of [...tiny, ...extra]) {
    const result = await benchStep(item, args.reps);
    tdtm.push(result);
    console.log(
      `TDTM  ${result.shape}: step ${ms(result.stepMs.st)} ST / ${ms(result.stepMs.tdtm)} TDTM = ${x(result.speedup.step)} ` +
        `(median ${x(result.medianSpeedup.step)}; FLOP bound ${x(result.flopBound.step)}); ` +
        `block pair ${x(result.speedup.pair)} (bound ${x(result.flopBound.pair)})`,
    );
  }
  const lpl = [];
  for (const item of tiny) {
    const result = await benchDenoise(item, args.lplReps);
    lpl.push(result);
    const parts = Object.entries(result.denoiseMs).map(
      ([name, t]) =>
        `${name} ${ms(t)} (${result.evaluations[name]} evals, ${x(result.speedup[name]!)}, median ${x(result.medianSpeedup[name]!)})`,
    );
    console.log(`LPL   ${result.shape}: ${parts.join(', ')}`);
  }

  const report = {
    benchmark: 'lpl-tdtm',
    createdAt: new Date().toISOString(),
    command: ['npm run bench:policies', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, onnxruntime: onnxRuntimeVersion() },
    reps: { step: args.reps, denoise: args.lplReps },
    tdtm,
    lpl,
  };
  const out = resolve(ROOT, args.out);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

try {
  await main();
} catch (error) {
  console.error(`error: ${errorMessage(error)}`);
  process.exitCode = 1;
}
