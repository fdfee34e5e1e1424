/**
 * The generations of `eval`: every held-out prompt × seed × configuration through the normal pipeline, the decoded
 * frames scored in memory. Blocks load once: the configurations without CI-DL share one GenerateSession, those with
 * it (the paper preset) share another. Configurations alternate within each prompt and seed, so a machine that
 * slows down over the run slows every configuration alike and their times stay comparable.
 */
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Model } from '../model/manifest.js';
import type { CidlSettings } from '../pipeline/ci-dl.js';
import type { GenerateJob, GenerateResult, GenerateSettings } from '../pipeline/generate.js';
import { latentShapeFor } from '../pipeline/latent.js';
import { createJobBackend, GenerateSession } from '../pipeline/session.js';
import { stepPolicies, type Preset } from '../policies/presets.js';
import type { Backend } from '../runtime/backend.js';
import { evalPreset, type EvalConfig } from './eval-configs.js';
import { scoreVideo, type VideoScore } from './video-score.js';
import { heldoutAttributes, type HeldoutPrompt, type VideoAttributes, type World } from './world.js';

export interface EvalPlan {
  readonly model: Model;
  readonly world: World;
  /** Every job's settings but the prompt and the seed. */
  readonly settings: GenerateSettings;
  /** The held-out prompts to generate, with their index in the world file. */
  readonly prompts: readonly { readonly index: number; readonly entry: HeldoutPrompt }[];
  readonly configs: readonly EvalConfig[];
  readonly seeds: readonly number[];
  /** For the configurations whose preset turns CI-DL on; resolved and checked against the model by the caller. */
  readonly cidl: CidlSettings | undefined;
  /** Keep each video as mp4 in this folder (it exists); otherwise the frames only pass through `scratchDir`. */
  readonly saveVideos?: { readonly dir: string; readonly ffmpegPath: string };
  /** An existing folder the pipeline may write frames into (it always writes its output somewhere). */
  readonly scratchDir: string;
  readonly logger: Logger;
  readonly onJob?: (job: EvalJob, index: number, total: number) => void;
}

export interface EvalJob {
  readonly config: EvalConfig;
  readonly promptIndex: number;
  readonly prompt: string;
  readonly seed: number;
}

export interface EvalRun extends EvalJob {
  readonly expected: VideoAttributes;
  /** STDiT evaluations (fewer than the steps after an LPL leap) and the leap step, if any. */
  readonly evaluations: number;
  readonly leapStep: number | null;
  /** Of the evaluations, those that reused the cached block-stack residual instead of running the blocks. */
  readonly reusedBlocks: number;
  readonly timingsMs: { readonly denoise: number; readonly total: number };
  /** The configuration's first generation: it may have loaded blocks (load time counts in its component's time). */
  readonly first: boolean;
  readonly video: string | null;
  readonly score: VideoScore;
}

/** One generation to make: the job, its held-out entry, and whether it is its configuration's first. */
interface PlannedJob {
  readonly job: EvalJob;
  readonly entry: HeldoutPrompt;
  readonly first: boolean;
}

export async function runEval(plan: EvalPlan): Promise<EvalRun[]> {
  const jobs: PlannedJob[] = plan.prompts.flatMap(({ index, entry }, p) =>
    plan.seeds.flatMap((seed, s) =>
      plan.configs.map((config) => ({ job: { config, promptIndex: index, prompt: entry.prompt, seed }, entry, first: p === 0 && s === 0 })),
    ),
  );
  // Keyed by whether CI-DL is on: a session's providers are plain resident ones or CI-DL schedulers, not both.
  const sessions = new Map<boolean, { readonly backend: Backend; readonly session: GenerateSession }>();
  const sessionFor = (withCidl: boolean): GenerateSession => {
    const cidl = withCidl ? plan.cidl : undefined;
    if (withCidl && cidl === undefined) throw new SoraError('INTERNAL', 'eval: a configuration with CI-DL but no CI-DL settings');
    let loaded = sessions.get(withCidl);
    if (loaded === undefined) {
      const backend = createJobBackend({ backend: 'onnx' }, cidl, plan.model, plan.logger);
      loaded = { backend, session: new GenerateSession({ model: plan.model, backend, logger: plan.logger, cidl }) };
      sessions.set(withCidl, loaded);
    }
    return loaded.session;
  };

  const runs: EvalRun[] = [];
  try {
    for (const [i, planned] of jobs.entries()) {
      plan.onJob?.(planned.job, i + 1, jobs.length);
      const preset = evalPreset(planned.job.config);
      runs.push(await runJob(plan, planned, preset, sessionFor(preset.cidl)));
    }
  } finally {
    for (const { session, backend } of sessions.values()) await session.close().finally(() => backend.close());
  }
  return runs;
}

async function runJob(plan: EvalPlan, { job, entry, first }: PlannedJob, preset: Preset, session: GenerateSession): Promise<EvalRun> {
  const settings = { ...plan.settings, prompt: job.prompt, seed: job.seed };
  const save = plan.saveVideos;
  const saved = save === undefined ? null : join(save.dir, videoName(job));
  // A saved video is written under a temporary name beside its final one, so a failed job leaves no half video.
  const video: GenerateJob['video'] =
    save === undefined ? { format: 'frames', path: plan.scratchDir } : { format: 'mp4', path: `${saved}.part`, ffmpegPath: save.ffmpegPath };
  let frames: readonly Uint8Array[] = [];
  let result: GenerateResult;
  try {
    result = await session.run({
      settings,
      video,
      // Policies keep per-run state (merged steps, the leap), so each generation gets its own.
      policies: stepPolicies(preset, latentShapeFor(settings).frames, plan.logger),
      onFrames: async (decoded) => {
        frames = decoded;
      },
    });
    if (saved !== null) await rename(video.path, saved);
  } catch (error) {
    if (saved !== null) await rm(video.path, { force: true });
    throw error;
  }
  const expected = heldoutAttributes(entry);
  return {
    ...job,
    expected,
    evaluations: result.sampler.evaluations,
    leapStep: result.sampler.leapStep,
    reusedBlocks: result.sampler.reusedBlocks,
    timingsMs: { denoise: result.timingsMs.denoise, total: result.timingsMs.total },
    first,
    video: saved,
    score: scoreVideo({ width: settings.width, height: settings.height, frames }, expected, plan.world),
  };
}

/** `baseline-p03-seed42.mp4`: sorts by configuration, then prompt. */
function videoName(job: EvalJob): string {
  return `${job.config}-p${String(job.promptIndex).padStart(2, '0')}-seed${job.seed}.mp4`;
}
