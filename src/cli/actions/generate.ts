/** `generate <prompt> -o <file>`: one video from a text prompt (commands/generate.ts defines its options). */
import { randomInt } from 'node:crypto';
import { extname, resolve } from 'node:path';
import type { Command } from 'commander';
import * as z from 'zod';
import { displayPath } from '../../display-path.js';
import { SoraError } from '../../errors.js';
import { defaultModelDir } from '../../model/default-model.js';
import { LIMITS } from '../../model/limits.js';
import type { StartedHashCheck } from '../../model/file-hashes.js';
import { loadModel, startModelHashCheck, type Model } from '../../model/manifest.js';
import type { Logger } from '../../logging.js';
import { generate, type GenerateResult, type GenerateSettings } from '../../pipeline/generate.js';
import { latentShapeFor } from '../../pipeline/latent.js';
import { formatBytes } from '../../pipeline/memory-budget.js';
import { openJobBackend } from '../../pipeline/session.js';
import { Timeline } from '../../pipeline/timeline.js';
import { TIMESTEP_TRANSFORMS } from '../../pipeline/timesteps.js';
import type { Backend } from '../../runtime/backend.js';
import { stepPolicies, type Preset } from '../../policies/presets.js';
import type { OnnxBackend } from '../../runtime/onnx-backend.js';
import { buildPrompt } from '../../text/prompt.js';
import { PromptTokenizer } from '../../text/tokenizer.js';
import { checkFfmpegMeanwhile, type Ffmpeg } from '../../video/ffmpeg.js';
import { contactSheetPng } from '../../video/contact-sheet.js';
import { claimPath, type Claim } from '../../video/claim.js';
import { OutputFiles, writeClaimed } from '../../video/output.js';
import { checkReplaceable, fileOutput } from '../../video/replaceable.js';
import { collectVersions, sidecarJson, sidecarPathFor, type Sidecar } from '../../video/sidecar.js';
import { checkFrameCount, VIDEO_FORMATS, type VideoFormat } from '../../video/video-writer.js';
import { cliContext, type CliContext } from '../context.js';
import { integerFlag, numberFlag, numFramesFlag, parseFlags, resolutionFlag, stepsFlag } from '../flags.js';
import { BACKEND_FLAGS, jobBackendChoice } from '../backend-flags.js';
import { jobMemory, MEMORY_FLAGS, memorySidecar } from '../memory-flags.js';
import { POLICY_FLAGS, presetFromFlags } from '../policy-flags.js';
import { checkDeclaredSize, checkPromptVocabulary } from '../model-limits.js';
import { progressDisplay } from '../progress.js';

const MAX_SEED = Number.MAX_SAFE_INTEGER;

/**
 * The model a command runs: loaded (structure, contract and file sizes checked), then each file's sha256 compared
 * the first time this version of it is used (src/model/file-hashes.ts).
 */
export async function loadModelToRun(dir: string | undefined, logger: Logger): Promise<Model> {
  return verifiedModel(startLoadingModel(dir), logger);
}

interface LoadingModel {
  readonly model: Model;
  readonly hashes: StartedHashCheck;
}

/**
 * Reads and checks the manifest, then looks up which files are verified already: reading only, so it can overlap
 * the output checks (start-up time, issue 17). A failure waits for whoever awaits it: the outputs' errors come first.
 */
function startLoadingModel(dir: string | undefined): Promise<LoadingModel> {
  const loading = loadModel(dir ?? defaultModelDir()).then((model) => ({ model, hashes: startModelHashCheck(model) }));
  loading.catch(() => undefined);
  return loading;
}

/** The model, once each file's sha256 is compared (hashed on first use, which records it in the tool's cache). */
async function verifiedModel(loading: Promise<LoadingModel>, logger: Logger): Promise<Model> {
  const { model, hashes } = await loading;
  const check = await hashes.complete();
  logger.debug(check, 'model files: sha256 checked on first use');
  return model;
}

const AES_MESSAGE = `must be a number from 0 to ${LIMITS.aestheticScore}`;
const CFG_MESSAGE = `must be a number from 0 to ${LIMITS.cfgScale}`;
const FPS_MESSAGE = `must be a number above 0, at most ${LIMITS.fps}`;

/** Zod fields of the options addJobOptions adds. */
export const JOB_FLAGS = {
  model: z.string().min(1, 'must name a folder').optional(),
  steps: stepsFlag.optional(),
  cfgScale: numberFlag(CFG_MESSAGE, (value) => value >= 0 && value <= LIMITS.cfgScale).optional(),
  seed: integerFlag(0, MAX_SEED, `must be an integer from 0 to ${MAX_SEED}`).optional(),
  numFrames: numFramesFlag.optional(),
  resolution: resolutionFlag.optional(),
  fps: numberFlag(FPS_MESSAGE, (value) => value > 0 && value <= LIMITS.fps).optional(),
  // Commander gives false for --no-aes, the string for --aes, true when neither was given.
  aes: z
    .union([z.boolean(), numberFlag(AES_MESSAGE, (value) => value >= 0 && value <= LIMITS.aestheticScore)], AES_MESSAGE)
    .optional(),
  timestepTransform: z.enum(TIMESTEP_TRANSFORMS, `must be one of: ${TIMESTEP_TRANSFORMS.join(', ')}`),
  overwrite: z.boolean().optional(),
  ...BACKEND_FLAGS,
  ffmpeg: z.string().min(1, 'must name a file').optional(),
  strictPrompt: z.boolean().optional(),
  allowAnySize: z.boolean().optional(),
  ...POLICY_FLAGS,
  ...MEMORY_FLAGS,
};
const JobFlagsSchema = z.object(JOB_FLAGS);
export type JobFlags = z.infer<typeof JobFlagsSchema>;

export const FORMAT_FLAG = z.enum(VIDEO_FORMATS, `must be one of: ${VIDEO_FORMATS.join(', ')}`);

const FlagsSchema = z.object({
  output: z.string().min(1, 'must name a file'),
  format: FORMAT_FLAG.optional(),
  preview: z.string().regex(/\.png$/i, 'must name a .png file').optional(),
  ...JOB_FLAGS,
});
type Flags = z.infer<typeof FlagsSchema>;

function formatOf(flags: Flags): VideoFormat {
  const extension = extname(flags.output.replace(/[/\\]+$/, '')).slice(1).toLowerCase();
  const named = VIDEO_FORMATS.find((name) => name === extension && name !== 'frames');
  if (flags.format !== undefined) {
    // A folder of frames named x.mp4, or GIF data in x.mp4, is a mistake no player forgives.
    if (named !== undefined && named !== flags.format) {
      const what = flags.format === 'frames' ? 'a folder of PNG frames' : `${flags.format} data`;
      throw new SoraError('USAGE', `--format ${flags.format} writes ${what}, but "${flags.output}" names a .${named} file; change the name or --format`);
    }
    return flags.format;
  }
  if (extension === '') return 'frames';
  if (named === undefined) {
    const choices = VIDEO_FORMATS.join('|');
    throw new SoraError('USAGE', `--format: cannot tell the format from "${flags.output}"; pass --format ${choices}`);
  }
  return named;
}

type SettingFlags = Pick<JobFlags, 'seed' | 'steps' | 'cfgScale' | 'numFrames' | 'resolution' | 'fps' | 'aes' | 'timestepTransform'>;

/** The flags over the model's defaults; a default the pipeline cannot use is the manifest's fault. */
export function settingsFor(prompt: string, flags: SettingFlags, model: Model): GenerateSettings {
  const defaults = model.defaults;
  const badDefault = (field: string, problem: string): SoraError =>
    new SoraError('MANIFEST', `${displayPath(model.manifestPath)}: defaults.${field}: ${problem}`);
  const defaultResolution = resolutionFlag.safeParse(defaults.resolution);
  const resolution = flags.resolution ?? defaultResolution.data;
  if (resolution === undefined) throw badDefault('resolution', 'width and height must be multiples of 16');
  if (flags.numFrames === undefined && defaults.numFrames % 17 !== 0) {
    throw badDefault('numFrames', 'must be a multiple of 17');
  }
  const aes = typeof flags.aes === 'number' ? flags.aes : flags.aes === false ? null : defaults.aestheticScore;
  return {
    prompt,
    aestheticScore: aes,
    seed: flags.seed ?? randomInt(0, 2 ** 32),
    steps: flags.steps ?? defaults.steps,
    cfgScale: flags.cfgScale ?? defaults.cfgScale,
    numFrames: flags.numFrames ?? defaults.numFrames,
    width: resolution.width,
    height: resolution.height,
    fps: flags.fps ?? defaults.fps,
    timestepTransform: flags.timestepTransform,
  };
}

/** What `generate` runs (commands/generate.ts defines it). */
export async function generateAction(prompt: string, options: Record<string, unknown>, self: Command): Promise<void> {
  await runGenerate(prompt, options, cliContext(self));
}

async function runGenerate(prompt: string, options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(FlagsSchema, options);
  const preset = presetFromFlags(flags);
  buildPrompt(prompt, null); // an empty prompt fails here, before anything is loaded
  const format = formatOf(flags);
  const sidecarPath = sidecarPathFor(flags.output);
  if (resolve(sidecarPath) === resolve(flags.output)) {
    throw new SoraError('USAGE', `--output: ${flags.output} is where the sidecar goes; choose another name`);
  }
  if (flags.preview !== undefined && [flags.output, sidecarPath].some((path) => resolve(path) === resolve(flags.preview!))) {
    throw new SoraError('USAGE', `--preview: ${flags.preview} is the video or its sidecar; choose another name`);
  }
  // Every output is claimed, checked and proven writable before the model is used; its manifest is read meanwhile.
  const overwrite = flags.overwrite === true;
  const shape = format === 'frames' ? 'directory' : 'file';
  const model = startLoadingModel(flags.model);
  // Read meanwhile too; used (and any failure of it reported) only once the files' hashes are checked.
  const tokenizer = model.then((loaded) => PromptTokenizer.forModel(loaded.model, context.logger));
  tokenizer.catch(() => undefined);
  const output = await OutputFiles.prepare(flags.output, sidecarPath, shape, overwrite, 'generate');
  let preview: Claim | undefined;
  try {
    preview = flags.preview === undefined ? undefined : await claimPreview(flags.preview, overwrite);
    await generateInto({ prompt, flags, preset, format, output, preview, model, tokenizer, context });
  } finally {
    await output.discard();
    preview?.release();
  }
}

async function claimPreview(path: string, overwrite: boolean): Promise<Claim> {
  const claim = await claimPath(path, { command: 'generate' });
  try {
    await checkReplaceable(path, fileOutput('a PNG preview'), overwrite);
  } catch (error) {
    claim.release();
    throw error;
  }
  return claim;
}

interface GenerateRun {
  readonly prompt: string;
  readonly flags: Flags;
  readonly preset: Preset;
  readonly format: VideoFormat;
  readonly output: OutputFiles;
  readonly preview: Claim | undefined;
  /** Loading since before the outputs were checked (startLoadingModel), and its tokenizer. */
  readonly model: Promise<LoadingModel>;
  readonly tokenizer: Promise<PromptTokenizer>;
  readonly context: CliContext;
}

async function generateInto({ prompt, flags, preset, format, output, preview, model: loading, tokenizer, context }: GenerateRun): Promise<void> {
  // Located now, run (`-version`) beside loading the model and the first blocks; one that does not run stops the job.
  const ffmpegCheck = format === 'frames' ? undefined : checkFfmpegMeanwhile(flags.ffmpeg);
  const model = await verifiedModel(loading, context.logger);
  const settings = settingsFor(prompt, flags, model);
  checkDeclaredSize(settings, model, flags.allowAnySize === true, context.logger);
  checkPromptVocabulary(prompt, model, flags.strictPrompt === true, context.logger);
  const choice = jobBackendChoice(flags);
  const timeline = flags.trace === true ? new Timeline() : undefined;
  // Outputs are claimed already; an unusable backend (CoreML outside macOS, or on a macOS older than the model's
  // packages need, a runner that cannot be reached or serves another model) fails here and the claims are given back.
  const { backend, cidl } = await openJobBackend(choice, jobMemory(flags, preset, model, [settings]), model, context.logger);

  const progress = progressDisplay(process.stderr);
  let result: GenerateResult;
  let sheet: Buffer | undefined;
  const renderSheet = async (frames: readonly Uint8Array[]): Promise<void> => {
    sheet = await contactSheetPng(frames, settings.width, settings.height);
  };
  try {
    result = await generate({
      model,
      backend,
      settings,
      tokenizer,
      video: { format, path: output.tempPath, ...(ffmpegCheck && { ffmpegPath: ffmpegCheck.path }) },
      logger: context.logger,
      policies: stepPolicies(preset, latentShapeFor(settings).frames, context.logger),
      signal: ffmpegCheck === undefined ? output.interrupted : AbortSignal.any([output.interrupted, ffmpegCheck.failed]),
      cidl,
      timeline,
      ...(preview !== undefined && { onFrames: renderSheet }),
      ...(context.options.quiet ? {} : { onProgress: (event) => progress.update(event) }),
    });
  } finally {
    progress.finish();
    await backend.close();
  }

  const ffmpeg = await ffmpegCheck?.probe;
  const speedups = sidecarSpeedups(flags.preset, preset);
  await checkFrameCount(output.tempPath, format, result.frames, ffmpeg?.path);
  const bytes = await output.writtenBytes();
  const sidecar = sidecarFor({ output: output.path, bytes, format, model, settings, speedups, result, ffmpeg, backend });
  const withMemory = { ...sidecar, ...memorySidecar(cidl, result, timeline) };
  await output.commit(sidecarJson(withMemory));
  // After the video: a preview never stands for a video that failed to be written.
  if (preview !== undefined && sheet !== undefined) await writeClaimed(preview, sheet);
  const previewField = preview === undefined ? {} : { preview: preview.path };
  const line = summaryLine(output.path, settings, result);
  const text = preview === undefined ? line : `${line}\npreview: ${displayPath(preview.path)}`;
  context.result(text, { ...withMemory, sidecar: output.sidecarPath, ...previewField });
}

export interface SidecarInputs {
  readonly output: string;
  /** What the output holds on disk (OutputFiles.writtenBytes). */
  readonly bytes: number;
  readonly format: VideoFormat;
  readonly model: Model;
  readonly settings: GenerateSettings;
  /** The preset and the LPL/TDTM settings in effect; what each did is in the sampler's policy records. */
  readonly speedups: SidecarSpeedups;
  readonly result: GenerateResult;
  readonly ffmpeg: Ffmpeg | undefined;
  readonly backend: Backend;
}

type SidecarSpeedups = { readonly preset: string } & Pick<Preset, 'lpl' | 'tdtm' | 'stepCache' | 'reuseEvery'>;

/** The speed-up settings a sidecar records: the preset's name and every field that changes the video. */
export function sidecarSpeedups(name: string, preset: Preset): SidecarSpeedups {
  const { lpl, tdtm, stepCache, reuseEvery } = preset;
  return { preset: name, lpl, tdtm, stepCache, reuseEvery };
}

export function sidecarFor({ output, bytes, format, model, settings, speedups, result, ffmpeg, backend }: SidecarInputs): Sidecar {
  const { prompt, seed, width, height, ...rest } = settings;
  const round = (ms: number): number => Math.round(ms * 10) / 10;
  return {
    output: { path: output, format, bytes },
    prompt,
    promptText: result.promptText,
    seed,
    model: { name: model.name, path: model.dir },
    settings: {
      ...rest,
      resolution: `${width}x${height}`,
      format,
      promptTokens: result.tokens,
      frames: result.frames,
      ...speedups,
    },
    sampler: result.sampler,
    timingsMs: Object.fromEntries(Object.entries(result.timingsMs).map(([key, ms]) => [key, round(ms)])),
    backend: { kind: backend.kind, device: backend.device },
    transfers: result.transfers,
    versions: collectVersions(ffmpeg?.version ?? null),
    createdAt: new Date().toISOString(),
  };
}

function summaryLine(path: string, settings: GenerateSettings, result: GenerateResult): string {
  const seconds = (result.timingsMs.total / 1000).toFixed(1);
  const video = `${result.frames} frames, ${settings.width}x${settings.height}, ${settings.fps} fps`;
  const peak = formatBytes(result.memory.peakRss);
  return `wrote ${displayPath(path)} (${video}, seed ${settings.seed}) in ${seconds} s, peak RSS ${peak}`;
}
