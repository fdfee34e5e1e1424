/**
 * `eval`: how well a shapes-world model draws what its held-out prompts ask for, under each speed-up configuration
 * (the same prompts and seeds for all), and how much denoising time each saves; or, with --video, the score of one
 * existing video against a prompt.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import * as z from 'zod';
import { displayPath } from '../../display-path.js';
import { SoraError } from '../../errors.js';
import { decodeVideo } from '../../eval/decode-video.js';
import { DEFAULT_EVAL_CONFIGS } from '../../eval/eval-config-names.js';
import { EVAL_CONFIGS, EVAL_STEPS, evalPreset, type EvalConfig } from '../../eval/eval-configs.js';
import { parsePairPrompt, parsePrompt, shapeMentions } from '../../eval/prompt-attributes.js';
import { pairScoreLines, reportTable, scoreLines } from '../../eval/render.js';
import { EvalReportSchema, summarise, type EvalReport } from '../../eval/report.js';
import { runEval, type EvalRun } from '../../eval/run-eval.js';
import { scorePairVideo, scoreVideo } from '../../eval/video-score.js';
import { loadWorld, WORLD_FILE, type VideoAttributes, type World } from '../../eval/world.js';
import { defaultModelDir } from '../../model/default-model.js';
import { PRESETS } from '../../policies/presets.js';
import { findFfmpeg } from '../../video/ffmpeg.js';
import { makeOutputFolder } from '../../video/folder-errors.js';
import { writeFileAtomically } from '../../video/output.js';
import { cliContext, type CliContext } from '../context.js';
import { integerFlag, parseFlags } from '../flags.js';
import { jobLines } from '../progress.js';
import { cidlSettings } from '../memory-flags.js';
import { JOB_FLAGS, loadModelToRun, settingsFor } from './generate.js';
import { DEFAULT_SEED } from '../commands/eval.js';

const MAX_SEEDS = 1000;

const CONFIGS_MESSAGE = `must be a comma-separated list of ${EVAL_CONFIGS.join(', ')}`;

const FlagsSchema = z.object({
  model: JOB_FLAGS.model,
  world: z.string().min(1, 'must name a file').optional(),
  configs: z
    .string()
    .transform((text) => text.split(',').map((name) => name.trim()))
    .pipe(z.array(z.enum(EVAL_CONFIGS, CONFIGS_MESSAGE)).min(1, CONFIGS_MESSAGE))
    .refine((names) => new Set(names).size === names.length, 'names a configuration twice')
    .optional(),
  prompts: z.union([z.literal('all'), integerFlag(1, Number.MAX_SAFE_INTEGER, 'must be a positive integer or all')], 'must be a positive integer or all').optional(),
  seed: JOB_FLAGS.seed,
  seeds: integerFlag(1, MAX_SEEDS, `must be an integer from 1 to ${MAX_SEEDS}`).optional(),
  cfgScale: JOB_FLAGS.cfgScale,
  report: z.string().min(1, 'must name a file').optional(),
  saveVideos: z.string().min(1, 'must name a folder').optional(),
  video: z.string().min(1, 'must name a file').optional(),
  prompt: z.string().trim().min(1, 'must not be empty').optional(),
  ffmpeg: JOB_FLAGS.ffmpeg,
});
type Flags = z.infer<typeof FlagsSchema>;

/** Flags of the generating run, which would change nothing with --video. */
const RUN_ONLY = {
  configs: '--configs',
  prompts: '--prompts',
  seed: '--seed',
  seeds: '--seeds',
  cfgScale: '--cfg-scale',
  report: '--report',
  saveVideos: '--save-videos',
} as const satisfies Partial<Record<keyof Flags, string>>;

/** What `eval` runs (commands/ defines its options). */
export async function evalAction(options: Record<string, unknown>, self: Command): Promise<void> {
  await runEvalCommand(options, cliContext(self));
}

async function runEvalCommand(options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(FlagsSchema, options);
  if (flags.video !== undefined) return scoreOneVideo(flags, flags.video, context);
  if (flags.prompt !== undefined) throw new SoraError('USAGE', '--prompt: only applies with --video <file>');
  return evaluateModel(flags, context);
}

function worldPath(flags: Flags): string {
  return flags.world ?? join(flags.model ?? defaultModelDir(), WORLD_FILE);
}

async function scoreOneVideo(flags: Flags, video: string, context: CliContext): Promise<void> {
  const unused = Object.entries(RUN_ONLY).find(([key]) => flags[key as keyof typeof RUN_ONLY] !== undefined);
  if (unused !== undefined) throw new SoraError('USAGE', `${unused[1]}: does not apply with --video`);
  if (flags.prompt === undefined) throw new SoraError('USAGE', '--video: needs --prompt "<what the video should show>"');
  const world = await loadWorld(worldPath(flags));
  const twoObjects = shapeMentions(flags.prompt, world) === 2;
  const parsed = twoObjects ? parsePairPrompt(flags.prompt, world) : parsePrompt(flags.prompt, world);
  if (!parsed.ok) {
    const example = world.heldout[0]!.prompt;
    throw new SoraError('USAGE', `--prompt: cannot find the ${parsed.missing.join(', ')} in "${flags.prompt}" (write it like "${example}")`);
  }
  const ffmpeg = await findFfmpeg(flags.ffmpeg);
  const frames = await decodeVideo(ffmpeg.path, video);
  const head = `${displayPath(resolve(video))}: ${frames.frames.length} frames, ${frames.width}x${frames.height}`;
  const json = { video: resolve(video), prompt: flags.prompt, expected: parsed.attributes };
  if (isPair(parsed.attributes)) {
    const score = scorePairVideo(frames, parsed.attributes, world);
    context.result(`${head}\n${pairScoreLines(score, context.paint)}`, { ...json, score });
    return;
  }
  const score = scoreVideo(frames, parsed.attributes, world);
  context.result(`${head}\n${scoreLines(score, context.paint)}`, { ...json, score });
}

function isPair(attributes: VideoAttributes | readonly [VideoAttributes, VideoAttributes]): attributes is readonly [VideoAttributes, VideoAttributes] {
  return Array.isArray(attributes);
}

async function evaluateModel(flags: Flags, context: CliContext): Promise<void> {
  const configs: EvalConfig[] = ['baseline', ...(flags.configs ?? DEFAULT_EVAL_CONFIGS).filter((config) => config !== 'baseline')];
  if (flags.report !== undefined) await refuseMissingFolder('--report', dirname(resolve(flags.report)));
  const model = await loadModelToRun(flags.model, context.logger);
  const world = await loadWorld(worldPath(flags));
  const prompts = chosenPrompts(world, flags.prompts ?? 'all');
  const firstSeed = flags.seed ?? DEFAULT_SEED;
  const seeds = Array.from({ length: flags.seeds ?? 1 }, (_, i) => firstSeed + i);
  // The world decides the clip; the model its guidance scale and aesthetic score. Each job sets its prompt and seed.
  const settings = settingsFor(
    prompts[0]!.entry.prompt,
    {
      seed: firstSeed,
      steps: EVAL_STEPS,
      cfgScale: flags.cfgScale,
      numFrames: world.num_frames,
      resolution: { width: world.size, height: world.size },
      fps: world.fps,
      timestepTransform: 'opensora',
    },
    model,
  );
  const withCidl = configs.some((config) => evalPreset(config).cidl);
  const cidl = withCidl ? cidlSettings({ ci: true, dl: true }, PRESETS.paper, model, [settings]) : undefined;
  const ffmpeg = flags.saveVideos === undefined ? undefined : await findFfmpeg(flags.ffmpeg);
  if (flags.saveVideos !== undefined) await makeOutputFolder(flags.saveVideos);

  const scratchDir = await mkdtemp(join(tmpdir(), 'ondevice-sora-eval-'));
  const line = jobLines();
  let runs: EvalRun[];
  try {
    runs = await runEval({
      model,
      world,
      settings,
      prompts,
      configs,
      seeds,
      cidl,
      ...(flags.saveVideos !== undefined && ffmpeg !== undefined && { saveVideos: { dir: resolve(flags.saveVideos), ffmpegPath: ffmpeg.path } }),
      scratchDir,
      logger: context.logger,
      onJob: (job, index, total) => context.progress(line(index, total, `${job.config}: prompt ${job.promptIndex + 1}, seed ${job.seed}`)),
    });
  } finally {
    await rm(scratchDir, { recursive: true, force: true });
  }

  const report = EvalReportSchema.parse({
    schemaVersion: 2,
    createdAt: new Date().toISOString(),
    model: { name: model.name, dir: model.dir },
    world: { path: resolve(worldPath(flags)), heldout: world.heldout.length },
    settings: {
      steps: settings.steps,
      width: settings.width,
      height: settings.height,
      numFrames: settings.numFrames,
      fps: settings.fps,
      cfgScale: settings.cfgScale,
      seeds,
      prompts: prompts.length,
    },
    summary: summarise(runs, configs),
    runs,
  } satisfies EvalReport);
  if (flags.report !== undefined) {
    await writeFileAtomically(flags.report, `${JSON.stringify(report, null, 2)}\n`);
    context.status(`wrote ${displayPath(resolve(flags.report))}`);
  }
  context.result(reportTable(report), report);
}

function chosenPrompts(world: World, count: number | 'all'): { index: number; entry: World['heldout'][number] }[] {
  const all = world.heldout.map((entry, index) => ({ index, entry }));
  if (count === 'all') return all;
  if (count > all.length) throw new SoraError('USAGE', `--prompts: the world has ${all.length} held-out prompts, got "${count}"`);
  return all.slice(0, count);
}

/** Before any model work: a report that cannot be written would waste the whole run. */
async function refuseMissingFolder(flag: string, folder: string): Promise<void> {
  const info = await stat(folder).catch(() => undefined);
  if (info?.isDirectory() !== true) throw new SoraError('IO', `${flag}: folder ${displayPath(folder)} does not exist`);
}
