/**
 * The JSON document `bench` writes (`--json`, bench.json), as a zod schema: the command validates its own report
 * before printing it, and bench.schema.json (the same schema as JSON Schema) lets other tools check it too.
 */
import * as z from 'zod';

import { MATRIX_CONFIGS, type MatrixConfig } from './matrix-configs.js';

export { MATRIX_CONFIGS, type MatrixConfig } from './matrix-configs.js';

/** Column titles, as the paper's Table 5 names them. */
export const CONFIG_LABELS: Readonly<Record<MatrixConfig, string>> = {
  baseline: 'baseline',
  lpl: 'LPL',
  tdtm: 'TDTM',
  cidl: 'CI-DL',
  all: 'All',
  paper: 'paper',
  fast: 'fast',
};

/** The parts of a generation the pipeline times (GenerateTimings). */
export const TIMING_PARTS = ['tokenizer', 'textEncoder', 'denoise', 'vae', 'write', 'total'] as const;
export type TimingPart = (typeof TIMING_PARTS)[number];

const ms = z.number().nonnegative();

export const StatsSchema = z.object({
  /** Number of samples. */
  n: z.int().positive(),
  medianMs: ms,
  minMs: ms,
  maxMs: ms,
});
export type Stats = z.infer<typeof StatsSchema>;

export const COMPONENTS = ['tokenizer', 't5', 'stdit', 'vae', 'encode'] as const;

/** One block (or step of the pipeline without blocks) of the baseline: its load and run times, cold and warm. */
export const ComponentRowSchema = z.object({
  component: z.enum(COMPONENTS),
  /** Block contract name, or `tokenize` / `encode`. */
  name: z.string().min(1),
  /** The configuration whose sessions timed it: the baseline, or for blocks it never runs (TDTM) tdtm, all or paper. */
  config: z.enum(MATRIX_CONFIGS),
  /** Times it runs in one generation (STDiT blocks: once per step; spatial VAE parts: once per 4 frames). */
  callsPerRun: z.number().nonnegative(),
  /** Loading the block (ONNX Runtime session creation) in a fresh session; null for tokenize and encode. */
  load: StatsSchema.nullable(),
  /** One call in the first generation of a fresh session (the blocks are loaded during it). */
  runCold: StatsSchema,
  /** One call in a later generation of the same session (the blocks already loaded, as in `batch`). */
  runWarm: StatsSchema,
  /** Matrix-product FLOPs of one call (block-flops.ts); null where none are counted (VAE parts, lookups). */
  flopsPerCall: z.number().nonnegative().nullable(),
  /** Achieved FLOP/s of a warm call (median) ÷ the GEMM roof; null without FLOPs or roof. */
  efficiency: z.number().nonnegative().nullable(),
});
export type ComponentRow = z.infer<typeof ComponentRowSchema>;

const PartStatsSchema = z.object(Object.fromEntries(TIMING_PARTS.map((part) => [part, StatsSchema])) as Record<TimingPart, typeof StatsSchema>);

const SpeedupSchema = z.object({ stdit: z.number().positive(), total: z.number().positive() });

export const MatrixRowSchema = z.object({
  config: z.enum(MATRIX_CONFIGS),
  label: z.string(),
  settings: z.object({
    /** LPL leap step (N + 1 evaluations), or null for none. */
    lplStep: z.int().nonnegative().nullable(),
    tdtm: z.union([z.literal('all'), z.int().nonnegative()]),
    cidl: z.boolean(),
    /** Step cache threshold (0: off). */
    stepCache: z.number().nonnegative(),
  }),
  /** STDiT evaluations per generation (fewer than the steps after an LPL leap). */
  evaluations: z.int().nonnegative(),
  /** Per part of the generation: the first generation of a fresh session, as `generate` runs. */
  cold: PartStatsSchema,
  /** The next generation in the same session, blocks already loaded (CI-DL: those its budget kept). */
  warm: PartStatsSchema,
  /** Median share of denoising time spent outside STDiT block runs (loads, waits, copies, the sampler), 0–1. */
  outsideBlocks: z.object({ cold: z.number().min(0).max(1), warm: z.number().min(0).max(1) }),
  /** Baseline median ÷ this median; null when the matrix has no baseline. */
  speedup: z.object({ cold: SpeedupSchema, warm: SpeedupSchema }).nullable(),
  /**
   * The analytic STDiT speed-up: the baseline's STDiT block calls ÷ this configuration's, each priced at its block's
   * median warm call (components), so nothing but block runs counts; and the measured STDiT speed-up ÷ it (1: all
   * time outside block runs and every load is hidden). Null without a baseline or a block's timing.
   */
  bound: z
    .object({ stdit: z.number().positive(), ofBound: z.object({ cold: z.number().positive(), warm: z.number().positive() }) })
    .nullable(),
});
export type MatrixRow = z.infer<typeof MatrixRowSchema>;

const TransferCountsSchema = z.object({
  toRuntime: z.number().nonnegative(),
  toHost: z.number().nonnegative(),
  withinRuntime: z.number().nonnegative(),
  copiedWithinRuntime: z.number().nonnegative(),
});

/** `--backend remote`: the runner's baseline against local ONNX sessions of the same run (analyze.ts). */
export const RunnerComparisonSchema = z.object({
  /** Warm generation: denoising milliseconds per model evaluation. */
  perStepWarm: z.object({ remote: StatsSchema, local: StatsSchema }),
  /** Remote median ÷ local median. */
  ratio: z.number().positive(),
  /** STDiT tensor bytes between the host and where blocks run, per step (warm generation). */
  bytesPerStep: z.object({ remote: TransferCountsSchema, local: TransferCountsSchema }),
});
export type RunnerComparison = z.infer<typeof RunnerComparisonSchema>;

/** A MatMul-only graph run through the benched ONNX backend (gemm-roof.ts): the fp32 FLOP/s blocks can reach. */
export const GemmRoofSchema = z.object({
  /** [M, K, N] of [M×K]·[K×N]. */
  shape: z.tuple([z.int().positive(), z.int().positive(), z.int().positive()]),
  flops: z.number().positive(),
  run: StatsSchema,
  /** FLOPs ÷ the median run time: the roof of the efficiency column. */
  flopsPerSecond: z.number().positive(),
  /** FLOPs ÷ the fastest run. */
  peakFlopsPerSecond: z.number().positive(),
});
export type GemmRoof = z.infer<typeof GemmRoofSchema>;

export const BenchReportSchema = z.object({
  schemaVersion: z.literal(1),
  createdAt: z.iso.datetime(),
  tool: z.object({ version: z.string(), node: z.string(), onnxruntime: z.string().nullable() }),
  machine: z.object({
    platform: z.string(),
    arch: z.string(),
    cpu: z.string(),
    threads: z.int().positive(),
    memoryBytes: z.number().positive(),
  }),
  backend: z.object({ kind: z.string(), device: z.string() }),
  model: z.object({
    name: z.string(),
    dir: z.string(),
    t5Layers: z.int().positive(),
    stditDepth: z.int().positive(),
    stditHidden: z.int().positive(),
  }),
  settings: z.object({
    steps: z.int().positive(),
    width: z.int().positive(),
    height: z.int().positive(),
    numFrames: z.int().positive(),
    seed: z.int().nonnegative(),
    /** Fresh sessions per configuration; each runs one cold and one warm generation. */
    repeat: z.int().positive(),
    /** The CI-DL budget in bytes (cidl and all), null when neither ran. */
    memoryBudget: z.number().positive().nullable(),
  }),
  /** Measured in the same run, before and after the sessions (3 runs each); null when the blocks do not run on local ONNX Runtime. */
  roof: GemmRoofSchema.nullable(),
  /** Per block, from the baseline's sessions. */
  components: z.array(ComponentRowSchema),
  /** One row per configuration of --matrix (just the baseline without it). */
  matrix: z.array(MatrixRowSchema).min(1),
  /** With --backend remote; null otherwise. */
  remote: RunnerComparisonSchema.nullable(),
});
export type BenchReport = z.infer<typeof BenchReportSchema>;

export function benchJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(BenchReportSchema) as Record<string, unknown>;
}

export function summarize(samples: readonly number[]): Stats {
  if (samples.length === 0) throw new Error('no samples to summarize');
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  const round = (value: number): number => Math.round(value * 1000) / 1000;
  return { n: sorted.length, medianMs: round(median), minMs: round(sorted[0]!), maxMs: round(sorted.at(-1)!) };
}
