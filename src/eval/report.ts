/**
 * The document `eval` writes (`--report`, `--json`): every generation's scores with the values they were decided on,
 * and one summary row per configuration. A zod schema, so the command checks its own output before writing it and
 * other tools can hold a file to the same shape.
 */
import * as z from 'zod';
import { median } from './frame-analysis.js';
import { configFlags, EVAL_CONFIGS, type EvalConfig } from './eval-configs.js';
import type { EvalRun } from './run-eval.js';
import { CRITERIA, type Criterion } from './video-score.js';
import { SHAPES } from './world.js';

const fraction = z.number().min(0).max(1);
const rgb = z.tuple([z.number(), z.number(), z.number()]).readonly();
const ms = z.number().nonnegative();

export const VideoScoreSchema = z.object({
  frames: z.int().nonnegative(),
  size: z.object({ width: z.int().positive(), height: z.int().positive() }),
  threshold: z.number().positive(),
  background: z.object({ pass: z.boolean(), expected: z.string(), detected: z.string().nullable(), rgb }),
  colour: z.object({ pass: z.boolean(), expected: z.string(), detected: z.string().nullable(), rgb: rgb.nullable() }),
  shape: z.object({
    pass: z.boolean(),
    expected: z.enum(SHAPES),
    detected: z.enum(SHAPES).nullable(),
    measurable: z.int().nonnegative(),
    votes: z.record(z.enum(SHAPES), z.int().nonnegative()),
    aspect: z.number().positive().nullable(),
    iou: fraction.nullable(),
    radialCv: z.number().nonnegative().nullable(),
  }),
  motion: z.object({
    pass: z.boolean(),
    expected: z.string(),
    detected: z.string().nullable(),
    displacement: z.tuple([z.number(), z.number()]).readonly().nullable(),
    distance: z.number().nonnegative().nullable(),
    angleErrorDeg: z.number().min(0).max(180).nullable(),
    trackRms: z.number().nonnegative().nullable(),
    sizeRatio: z.number().nonnegative().nullable(),
    sizeR2: z.number().max(1).nullable(),
  }),
  consistency: z.object({ pass: z.boolean(), presence: fraction, steadyArea: fraction, steadyPosition: fraction, steadyColour: fraction }),
  passed: z.int().min(0).max(CRITERIA.length),
  overall: fraction,
});

export const EvalRunSchema = z.object({
  config: z.enum(EVAL_CONFIGS),
  promptIndex: z.int().nonnegative(),
  prompt: z.string(),
  seed: z.int().nonnegative(),
  expected: z.object({ shape: z.enum(SHAPES), colour: z.string(), background: z.string(), motion: z.string() }),
  evaluations: z.int().nonnegative(),
  leapStep: z.int().nonnegative().nullable(),
  /** Of the evaluations, those that reused the cached block-stack residual (step cache, block reuse). */
  reusedBlocks: z.int().nonnegative(),
  timingsMs: z.object({ denoise: ms, total: ms }),
  first: z.boolean(),
  video: z.string().nullable(),
  score: VideoScoreSchema,
});

const criterionFractions = Object.fromEntries(CRITERIA.map((criterion) => [criterion, fraction])) as Record<Criterion, typeof fraction>;

export const SummaryRowSchema = z.object({
  config: z.enum(EVAL_CONFIGS),
  /** The `generate` flags the configuration stands for. */
  flags: z.string(),
  runs: z.int().positive(),
  /** Share of the runs passing each criterion. */
  ...criterionFractions,
  /** Mean of the five shares. */
  overall: fraction,
  /** overall ÷ the baseline's; null when the baseline passes nothing. */
  relative: z.number().nonnegative().nullable(),
  /** Median STDiT evaluations per generation. */
  evaluations: z.number().nonnegative(),
  /** Median denoising (STDiT) time, over the runs after the configuration's first (which may load blocks) when there are any. */
  denoiseMs: ms,
  /** Baseline denoising time ÷ this one. */
  speedup: z.number().positive(),
});
export type SummaryRow = z.infer<typeof SummaryRowSchema>;

export const EvalReportSchema = z.object({
  // 2: the strict evaluator's measurements (shape geometry, track fit, steady position).
  schemaVersion: z.literal(2),
  createdAt: z.iso.datetime(),
  model: z.object({ name: z.string(), dir: z.string() }),
  world: z.object({ path: z.string(), heldout: z.int().positive() }),
  settings: z.object({
    steps: z.int().positive(),
    width: z.int().positive(),
    height: z.int().positive(),
    numFrames: z.int().positive(),
    fps: z.number().positive(),
    cfgScale: z.number().nonnegative(),
    seeds: z.array(z.int().nonnegative()).min(1),
    prompts: z.int().positive(),
  }),
  summary: z.array(SummaryRowSchema).min(1),
  runs: z.array(EvalRunSchema).min(1),
});
export type EvalReport = z.infer<typeof EvalReportSchema>;

/** One row per configuration, in the order given; the first one is the baseline the others are compared with. */
export function summarise(runs: readonly EvalRun[], configs: readonly EvalConfig[]): SummaryRow[] {
  const rows = configs.map((config) => {
    const mine = runs.filter((run) => run.config === config);
    const share = (criterion: Criterion): number => mine.filter((run) => run.score[criterion].pass).length / mine.length;
    const shares = Object.fromEntries(CRITERIA.map((criterion) => [criterion, share(criterion)])) as Record<Criterion, number>;
    const timed = mine.length > 1 ? mine.filter((run) => !run.first) : mine;
    return {
      config,
      flags: configFlags(config),
      runs: mine.length,
      ...shares,
      overall: CRITERIA.reduce((sum, criterion) => sum + shares[criterion], 0) / CRITERIA.length,
      evaluations: median(mine.map((run) => run.evaluations)),
      denoiseMs: median(timed.map((run) => run.timingsMs.denoise)),
    };
  });
  const baseline = rows[0]!;
  return rows.map((row) => ({
    ...row,
    relative: baseline.overall === 0 ? null : row.overall / baseline.overall,
    speedup: baseline.denoiseMs / row.denoiseMs,
  }));
}
