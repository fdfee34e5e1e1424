/**
 * The measurements of `bench`. Every configuration of the matrix runs `repeat` times in a fresh backend and
 * session, each doing two generations of the same settings: a cold one (blocks loaded during it, as `generate`
 * runs) and a warm one (blocks already loaded, as every prompt after the first of a `batch`). Configurations
 * alternate within each repetition, so a machine that slows down over time slows every column alike.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../logging.js';
import type { Model } from '../model/manifest.js';
import type { CidlSettings } from '../pipeline/ci-dl.js';
import type { GenerateResult, GenerateSettings } from '../pipeline/generate.js';
import { latentShapeFor } from '../pipeline/latent.js';
import { GenerateSession, createJobBackend } from '../pipeline/session.js';
import type { Backend } from '../runtime/backend.js';
import { Timeline } from '../pipeline/timeline.js';
import { PRESETS, stepPolicies, type Preset } from '../policies/presets.js';
import type { MatrixConfig } from './report.js';

/** One fresh session of one configuration. */
export interface SessionRun {
  readonly config: MatrixConfig;
  readonly rep: number;
  readonly cold: GenerateResult;
  readonly warm: GenerateResult;
  /** Every block load and run of both generations; the warm one starts at `warmStartMs`. */
  readonly timeline: Timeline;
  readonly warmStartMs: number;
  readonly device: string;
  /** Where the blocks ran: the benched backend, or the local ONNX reference of a remote bench. */
  readonly place: 'benched' | 'local';
}

export interface BenchPlan {
  readonly model: Model;
  readonly settings: GenerateSettings;
  /** Starts with the baseline. */
  readonly configs: readonly MatrixConfig[];
  readonly repeat: number;
  /** For the configurations with CI-DL; resolved and checked against the model by the caller. */
  readonly cidl: CidlSettings | undefined;
  readonly ffmpegPath: string;
  /** Scratch folder for the videos, emptied as it goes. */
  readonly workDir: string;
  readonly logger: Logger;
  /** The benched backend, fresh for each session (default: local ONNX). */
  readonly openBackend?: (cidl: CidlSettings | undefined) => Promise<Backend>;
  /**
   * Also run a baseline session on local ONNX after each repetition's: the reference a remote runner's per-step
   * time and bytes are compared with, measured in the same run.
   */
  readonly localReference?: boolean;
  readonly onSession?: (config: MatrixConfig, rep: number, index: number, total: number) => void;
}

/**
 * The paper's ablation (Table 5): LPL leaps at half the steps (15 of 30), TDTM merges in every step. `paper` and
 * `fast` are the presets of those names with their leap (15 of 30) and merging steps scaled to `steps` alike.
 */
export function configPreset(config: MatrixConfig, steps: number): Preset {
  const leap = { mode: 'fixed', step: Math.max(1, Math.floor(steps / 2)) } as const;
  const off = PRESETS.baseline;
  switch (config) {
    case 'baseline':
      return off;
    case 'lpl':
      return { ...off, lpl: leap };
    case 'tdtm':
      return { ...off, tdtm: 'all' };
    case 'cidl':
      return { ...off, cidl: true };
    case 'all':
      return { ...off, lpl: leap, tdtm: 'all', cidl: true };
    case 'paper':
      return { ...PRESETS.paper, lpl: leap, tdtm: leap.step };
    case 'fast':
      return { ...PRESETS.fast, lpl: leap };
  }
}

export async function runBench(plan: BenchPlan): Promise<SessionRun[]> {
  const runs: SessionRun[] = [];
  const total = plan.repeat * (plan.configs.length + (plan.localReference === true ? 1 : 0));
  for (let rep = 1; rep <= plan.repeat; rep++) {
    for (const config of plan.configs) {
      plan.onSession?.(config, rep, runs.length + 1, total);
      runs.push(await runSession(plan, config, rep, 'benched'));
    }
    if (plan.localReference === true) {
      plan.onSession?.('baseline', rep, runs.length + 1, total);
      runs.push(await runSession(plan, 'baseline', rep, 'local'));
    }
  }
  return runs;
}

async function runSession(plan: BenchPlan, config: MatrixConfig, rep: number, place: SessionRun['place']): Promise<SessionRun> {
  const { model, settings, logger } = plan;
  const preset = configPreset(config, settings.steps);
  const cidl = preset.cidl ? plan.cidl : undefined;
  const backend =
    place === 'benched' && plan.openBackend !== undefined
      ? await plan.openBackend(cidl)
      : createJobBackend({ backend: 'onnx' }, cidl, model, logger);
  const timeline = new Timeline();
  const session = new GenerateSession({ model, backend, logger, cidl, timeline });
  const video = join(plan.workDir, `${config}.mp4`);
  const generation = (): Promise<GenerateResult> =>
    session.run({
      settings,
      video: { format: 'mp4', path: video, ffmpegPath: plan.ffmpegPath },
      // Policies keep per-run state (merged steps, the leap), so each generation gets its own.
      policies: stepPolicies(preset, latentShapeFor(settings).frames, logger),
    });
  try {
    const cold = await generation();
    const warmStartMs = timeline.now();
    const warm = await generation();
    return { config, rep, cold, warm, timeline, warmStartMs, device: backend.device, place };
  } finally {
    await session.close().finally(() => backend.close());
    await rm(video, { force: true });
  }
}
