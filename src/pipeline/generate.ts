import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging.js';
import type { Component } from '../model/contract.js';
import type { Model } from '../model/manifest.js';
import { transferDelta, wrapBackend, type Backend, type TransferCounts } from '../runtime/backend.js';
import { buildPrompt } from '../text/prompt.js';
import { encodeText, type TextEncoding } from '../text/text-encoder.js';
import { PromptTokenizer } from '../text/tokenizer.js';
import { FrameStream } from '../video/frame-stream.js';
import { writeVideo, type VideoFormat } from '../video/video-writer.js';
import { componentSources, ResidentBlockProvider, type BlockProvider } from './block-provider.js';
import { CidlScheduler, scheduledBlocks, type CidlReport, type CidlSettings } from './ci-dl.js';
import { latentLength, latentShapeFor, type LatentShape } from './latent.js';
import { localMemoryMeter, processPeakRss } from './memory-budget.js';
import { budgetHoldsComponent, modelWeightBytes, runGeometry } from './memory-estimates.js';
import { gaussianNoise } from './rng.js';
import { sample, type SampleResult, type StepPolicy } from './sampler.js';
import { StditRunner } from './stdit-runner.js';
import { recordedBackend, type Timeline } from './timeline.js';
import { samplingTimesteps, type TimestepTransform } from './timesteps.js';
import { decodeLatent, type RgbFrame } from './vae-decoder.js';

/** One generation's settings, already validated (the CLI does that before any model work). */
export interface GenerateSettings {
  readonly prompt: string;
  /** Aesthetic score appended to the prompt, or null for none. */
  readonly aestheticScore: number | null;
  readonly seed: number;
  readonly steps: number;
  readonly cfgScale: number;
  /** A multiple of 17. */
  readonly numFrames: number;
  /** Multiples of 16. */
  readonly width: number;
  readonly height: number;
  /** Conditions the model and is the frame rate of the file, as in Open-Sora. */
  readonly fps: number;
  readonly timestepTransform: TimestepTransform;
}

export type GenerateProgress =
  | { readonly phase: 'text' }
  | { readonly phase: 'denoise'; readonly step: number; readonly steps: number }
  | { readonly phase: 'decode'; readonly frames: number; readonly total: number }
  | { readonly phase: 'write' };

export interface GenerateJob {
  readonly model: Model;
  readonly backend: Backend;
  readonly settings: GenerateSettings;
  /** The model's tokenizer when it is loading already (the CLI reads it while it checks its outputs); else loaded here. */
  readonly tokenizer?: Promise<PromptTokenizer>;
  /** Where and how to write: `path` is the (temporary) file or folder the writer fills; ffmpeg unless frames. */
  readonly video: { readonly format: VideoFormat; readonly path: string; readonly ffmpegPath?: string };
  readonly logger: Logger;
  /** Per-step policies (speed-ups); none is the baseline sampler. */
  readonly policies?: readonly StepPolicy[];
  readonly onProgress?: (progress: GenerateProgress) => void;
  /** Stops the job before its next block run (or kills the encoder) and fails with the signal's reason. */
  readonly signal?: AbortSignal;
  /** CI-DL: blocks scheduled under a memory budget. Absent, each component's blocks stay loaded until it is done. */
  readonly cidl?: CidlSettings;
  /** Receives every block load, run and unload. */
  readonly timeline?: Timeline;
  /** Sees the decoded frames before they are written, e.g. to render a preview. */
  readonly onFrames?: (frames: readonly RgbFrame[]) => Promise<void>;
  /**
   * Providers that outlive the job (a batch session keeps every block loaded from one prompt to the next). Absent,
   * each component's provider is made for the job and closed as soon as the component is done.
   */
  readonly providers?: ComponentProviders;
}

export interface ComponentProviders {
  /** `settings`: the job that asks first (a provider made for it plans memory for its size). */
  provider(component: Component, settings: GenerateSettings): BlockProvider;
}

/** A job while it runs: what each component's CI-DL scheduler reported when it closed. */
interface Run extends GenerateJob {
  readonly cidlReports: CidlReport[];
}

export interface GenerateTimings {
  readonly tokenizer: number;
  readonly textEncoder: number;
  readonly denoise: number;
  readonly vae: number;
  /** From the last decoded frame to the finished video: the writer starts with the decode and takes frames as they come. */
  readonly write: number;
  readonly total: number;
}

export interface GenerateResult {
  /** The text that was tokenized: the prompt with its aesthetic-score suffix. */
  readonly promptText: string;
  /** Valid prompt tokens, EOS included. */
  readonly tokens: number;
  readonly frames: number;
  readonly sampler: Omit<SampleResult, 'latent'>;
  /** Milliseconds per component; block loads happen on first use, so they count in their component. */
  readonly timingsMs: GenerateTimings;
  /** Peak RSS of the process so far, and CI-DL's measurements and decisions per component (none without CI-DL). */
  readonly memory: { readonly peakRss: number; readonly cidl: readonly CidlReport[] };
  /**
   * Tensor bytes moved between the host and where blocks run, per component; for the STDiT also per denoising step
   * (its total divided by the model evaluations).
   */
  readonly transfers: {
    readonly t5: TransferCounts;
    readonly stdit: TransferCounts & { readonly perStep: TransferCounts };
    readonly vae: TransferCounts;
  };
}

/**
 * The whole job: tokenize → T5 → rectified-flow sampling over STDiT → VAE decode → video file.
 * Each component's blocks are released as soon as it is done, so peak memory is that of the largest component,
 * not of the whole model (unless `job.providers` keeps them for the next job: see GenerateSession).
 */
export async function generate(job: GenerateJob): Promise<GenerateResult> {
  const { model, settings, onProgress } = job;
  const run: Run = { ...job, cidlReports: [] };
  const start = performance.now();
  const timed = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
    const begin = performance.now();
    const value = await work();
    return [value, performance.now() - begin];
  };

  onProgress?.({ phase: 'text' });
  const promptText = buildPrompt(settings.prompt, settings.aestheticScore);
  const [tokens, tokenizerMs] = await timed(async () => {
    return (await (job.tokenizer ?? PromptTokenizer.forModel(model, job.logger))).encode(promptText);
  });
  const counted = transferMeter(job.backend);
  const [text, textEncoderMs] = await timed(() =>
    withProvider(run, 't5', (provider) => encodeText(provider, tokens, model.architecture.t5.num_layers)),
  );
  const t5Transfers = counted();

  const latent = latentShapeFor(settings);
  const [sampled, denoiseMs] = await timed(() => denoise(run, text, latent));
  const stditTransfers = counted();
  const writing = startWriting(job);
  let frames: RgbFrame[];
  let vaeMs: number;
  try {
    [frames, vaeMs] = await timed(() =>
      withProvider(run, 'vae', (provider) =>
        decodeLatent(provider, sampled.latent, latent, (done, total, chunk) => {
          writing.frames.push(chunk);
          onProgress?.({ phase: 'decode', frames: done, total });
        }),
      ),
    );
    await job.onFrames?.(frames);
  } catch (error) {
    await writing.abandon(error);
    throw error;
  }
  const vaeTransfers = counted();
  onProgress?.({ phase: 'write' });
  const [, writeMs] = await timed(() => writing.finish());
  job.signal?.throwIfAborted();
  const { latent: _, ...samplerFacts } = sampled;
  return {
    promptText,
    tokens: tokens.validLength,
    frames: frames.length,
    sampler: samplerFacts,
    timingsMs: {
      tokenizer: tokenizerMs,
      textEncoder: textEncoderMs,
      denoise: denoiseMs,
      vae: vaeMs,
      write: writeMs,
      total: performance.now() - start,
    },
    memory: { peakRss: processPeakRss(), cidl: run.cidlReports },
    transfers: {
      t5: t5Transfers,
      stdit: { ...stditTransfers, perStep: perStep(stditTransfers, sampled.evaluations) },
      vae: vaeTransfers,
    },
  };
}

/** Counts moved since the previous call (or since the meter was made). */
function transferMeter(backend: Backend): () => TransferCounts {
  let last = backend.transfers();
  return () => {
    const now = backend.transfers();
    const delta = transferDelta(now, last);
    last = now;
    return delta;
  };
}

function perStep(counts: TransferCounts, steps: number): TransferCounts {
  const each = (bytes: number): number => (steps === 0 ? 0 : Math.round(bytes / steps));
  return {
    toRuntime: each(counts.toRuntime),
    toHost: each(counts.toHost),
    withinRuntime: each(counts.withinRuntime),
    copiedWithinRuntime: each(counts.copiedWithinRuntime),
  };
}

function denoise(job: Run, text: TextEncoding, latent: LatentShape): Promise<SampleResult> {
  const { settings, model, onProgress } = job;
  return withProvider(job, 'stdit', async (provider) => {
    const runner = new StditRunner({
      provider,
      depth: model.architecture.stdit.depth,
      latent,
      text,
      fps: settings.fps,
      width: settings.width,
      height: settings.height,
    });
    try {
      return await sample(runner, gaussianNoise(settings.seed, latentLength(latent)), {
        timesteps: samplingTimesteps(settings.steps, settings.timestepTransform, settings),
        cfgScale: settings.cfgScale,
        policies: job.policies,
        onStep: (step) => onProgress?.({ phase: 'denoise', step: step.index + 1, steps: step.steps }),
      });
    } finally {
      await runner.close();
    }
  });
}

/** The video being written while the frames are decoded (frame-stream.ts). */
interface Writing {
  readonly frames: FrameStream;
  /** All frames are in: waits for the writer to finish. */
  finish(): Promise<void>;
  /** The frames will not all come: stops the writer (ffmpeg is killed) and waits for it. */
  abandon(reason: unknown): Promise<void>;
}

function startWriting(job: GenerateJob): Writing {
  const { settings, video, signal } = job;
  const spec = { format: video.format, width: settings.width, height: settings.height, fps: settings.fps };
  const frames = new FrameStream();
  const stop = new AbortController();
  const stops = signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]);
  const written = writeVideo(frames, spec, { ...video, signal: stops });
  // Its failure is reported by finish(), or set aside by abandon(); until then nobody awaits it.
  written.catch(() => undefined);
  return {
    frames,
    finish: () => {
      frames.end();
      return written;
    },
    abandon: async (reason) => {
      stop.abort(reason);
      frames.fail(reason);
      await written.catch(() => undefined);
    },
  };
}

/**
 * Runs `work` with a provider over one component's blocks: the job's shared one, or one made here and unloaded
 * afterwards, also on failure.
 */
async function withProvider<T>(job: Run, component: Component, work: (provider: BlockProvider) => Promise<T>): Promise<T> {
  const shared = job.providers?.provider(component, job.settings);
  const provider = shared ?? blockProvider(jobBackend(job.backend, job), job, component, job.settings);
  try {
    return await work(provider);
  } finally {
    if (shared === undefined) await provider.close();
    if (provider instanceof CidlScheduler) job.cidlReports.push(provider.report());
  }
}

/** The backend as a job's providers use it: refusing work once the signal fires, recording into the timeline. */
export function jobBackend(backend: Backend, job: Pick<GenerateJob, 'signal' | 'timeline'>): Backend {
  const interruptibleBackend = interruptible(backend, () => job.signal);
  return job.timeline === undefined ? interruptibleBackend : recordedBackend(interruptibleBackend, job.timeline);
}

/** One component's provider: every block resident until close(), or the CI-DL scheduler, planned for `settings`. */
export function blockProvider(
  backend: Backend,
  job: Pick<GenerateJob, 'model' | 'cidl' | 'timeline' | 'logger'>,
  component: Component,
  settings: GenerateSettings,
): BlockProvider {
  const { model, cidl, timeline, logger } = job;
  if (cidl === undefined) return new ResidentBlockProvider(backend, componentSources(model, component));
  const geometry = runGeometry(model, latentShapeFor(settings), component);
  const inUse = (backend.memory ?? localMemoryMeter).inUse();
  return new CidlScheduler(backend, scheduledBlocks(model, component), {
    ...cidl,
    label: component,
    logger,
    timeline,
    geometry,
    modelWeightBytes: modelWeightBytes(model),
    mapWeights: !budgetHoldsComponent(cidl.budget.bytes, inUse, model, component),
  });
}

/**
 * The backend, refusing new loads and runs once the current signal fires (read at each call: a session's changes
 * per job). A block already running finishes first: ending an ONNX Runtime call from outside is not possible, and
 * exiting the process during one aborts it.
 */
function interruptible(backend: Backend, signal: () => AbortSignal | undefined): Backend {
  return wrapBackend(backend, {
    load: async (block) => {
      signal()?.throwIfAborted();
      return backend.load(block);
    },
    run: async (handle, inputs, options) => {
      signal()?.throwIfAborted();
      return backend.run(handle, inputs, options);
    },
  });
}
