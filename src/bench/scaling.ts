/**
 * `bench --scaling`: the cost of one denoising step as the video grows. Each point (resolution × frame count) runs
 * one generation in a fresh session and takes the STDiT step time from its block runs alone (loads excluded),
 * beside the step's matrix-product FLOPs (stdit-flops.ts), the process's peak RSS and the efficiency against the
 * GEMM roof. Points run smallest first, so the peak RSS so far is the peak of the point just run.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import type { Logger } from '../logging.js';
import type { Model } from '../model/manifest.js';
import type { GenerateSettings } from '../pipeline/generate.js';
import { GenerateSession, createJobBackend } from '../pipeline/session.js';
import { Timeline } from '../pipeline/timeline.js';
import { PRESETS, stepPolicies } from '../policies/presets.js';
import { latentShapeFor } from '../pipeline/latent.js';
import { stditFlopShape } from './block-flops.js';
import { GemmRoofSchema, StatsSchema, summarize, type GemmRoof } from './report.js';
import { stepFlops } from './stdit-flops.js';

export const ScalingPointSchema = z.object({
  width: z.int().positive(),
  height: z.int().positive(),
  numFrames: z.int().positive(),
  /** STDiT tokens per CFG sample: latent frames × patches per frame. */
  tokens: z.int().positive(),
  /** Matrix-product FLOPs of one step (part1, every block pair, part2); null when the manifest lacks a number. */
  flopsPerStep: z.number().positive().nullable(),
  /**
   * Σ STDiT block run times per model evaluation, over the warm evaluations (all but the first) when there are
   * several: a fresh session's first runs also allocate their activations and fault in their pages, which is not what
   * the blocks cost as the work grows (10–40 % slower at the largest points). With one step, the first is all there is.
   */
  step: StatsSchema,
  /** The first evaluation's Σ of block runs (ms): the cold step. */
  firstStepMs: z.number().nonnegative(),
  /** Peak RSS of the process after this point's generation (bytes). */
  peakRssBytes: z.number().positive(),
  /** FLOPs ÷ median step time ÷ the roof. */
  efficiency: z.number().nonnegative().nullable(),
});
export type ScalingPoint = z.infer<typeof ScalingPointSchema>;

export const ScalingReportSchema = z.object({
  schemaVersion: z.literal(1),
  createdAt: z.iso.datetime(),
  model: z.object({ name: z.string(), dir: z.string(), stditDepth: z.int().positive(), stditHidden: z.int().positive() }),
  steps: z.int().positive(),
  roof: GemmRoofSchema.nullable(),
  points: z.array(ScalingPointSchema).min(1),
});
export type ScalingReport = z.infer<typeof ScalingReportSchema>;

export interface ScalingPlan {
  readonly model: Model;
  /** The settings every point shares (prompt, seed, steps); width, height and frames are the point's. */
  readonly settings: GenerateSettings;
  readonly resolutions: readonly number[];
  readonly frameCounts: readonly number[];
  readonly ffmpegPath: string;
  readonly workDir: string;
  readonly logger: Logger;
  readonly onPoint?: (settings: GenerateSettings, index: number, total: number) => void;
}

/** FLOPs ÷ median step time ÷ the roof (measured around the points, so known only after them). */
export function withScalingEfficiency(point: ScalingPoint, roof: GemmRoof | null): ScalingPoint {
  const { flopsPerStep, step } = point;
  const efficiency =
    flopsPerStep === null || roof === null || step.medianMs <= 0
      ? null
      : Math.round((flopsPerStep / (step.medianMs / 1000) / roof.flopsPerSecond) * 1000) / 1000;
  return { ...point, efficiency };
}

export async function runScaling(plan: ScalingPlan): Promise<ScalingPoint[]> {
  const grid = plan.resolutions.flatMap((side) => plan.frameCounts.map((numFrames) => ({ side, numFrames })));
  grid.sort((a, b) => a.side * a.side * a.numFrames - b.side * b.side * b.numFrames);
  const points: ScalingPoint[] = [];
  for (const [i, { side, numFrames }] of grid.entries()) {
    const settings = { ...plan.settings, width: side, height: side, numFrames };
    plan.onPoint?.(settings, i + 1, grid.length);
    points.push(await runPoint(plan, settings));
  }
  return points;
}

async function runPoint(plan: ScalingPlan, settings: GenerateSettings): Promise<ScalingPoint> {
  const { model, logger } = plan;
  const backend = createJobBackend({ backend: 'onnx' }, undefined, model, logger);
  const timeline = new Timeline();
  const session = new GenerateSession({ model, backend, logger, cidl: undefined, timeline });
  const video = join(plan.workDir, `scaling-${settings.width}-${settings.numFrames}.mp4`);
  try {
    const result = await session.run({
      settings,
      video: { format: 'mp4', path: video, ffmpegPath: plan.ffmpegPath },
      policies: stepPolicies(PRESETS.baseline, latentShapeFor(settings).frames, logger),
    });
    const stditBlocks = new Set(model.blocks.filter((block) => block.component === 'stdit').map((block) => block.name));
    const runs = timeline.events.filter((e) => e.kind === 'run' && e.block !== undefined && stditBlocks.has(e.block));
    const evaluations = Math.max(1, result.sampler.evaluations);
    const perBlock = runs.length / evaluations;
    const steps = Array.from({ length: evaluations }, (_, i) =>
      runs.slice(i * perBlock, (i + 1) * perBlock).reduce((sum, e) => sum + (e.endMs - e.startMs), 0),
    );
    const step = summarize(steps.length > 1 ? steps.slice(1) : steps);
    const shape = stditFlopShape(model, settings, result.tokens);
    const flopsPerStep = shape === null ? null : stepFlops(shape, 'st').step;
    const latent = latentShapeFor(settings);
    return {
      width: settings.width,
      height: settings.height,
      numFrames: settings.numFrames,
      tokens: shape === null ? latent.frames * Math.ceil(latent.height / 2) * Math.ceil(latent.width / 2) : shape.frames * shape.patchesPerFrame,
      flopsPerStep,
      step,
      firstStepMs: Math.round(steps[0]! * 10) / 10,
      peakRssBytes: result.memory.peakRss,
      efficiency: null,
    };
  } finally {
    await session.close().finally(() => backend.close());
    await rm(video, { force: true });
  }
}
