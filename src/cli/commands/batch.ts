/** `batch <file> -o <folder>`: one video per prompt line, every block loaded once for the whole batch. */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { inShard, shardFlag } from '../../batch/shard.js';
import { anyExists, isFinished, planOutputs, type PlannedJob } from '../../batch/plan.js';
import { readPromptFile, type BatchEntry, type LineProblem } from '../../batch/prompt-file.js';
import { resultsJsonl, summaryTable, type BatchResult, type BatchStatus } from '../../batch/results.js';
import { displayPath } from '../../display-path.js';
import { ERROR_EXIT_CODES, errorMessage, isSoraError, SoraError, type ErrorCode } from '../../errors.js';
import { loadModel, type Model } from '../../model/manifest.js';
import type { CidlSettings } from '../../pipeline/ci-dl.js';
import { latentShapeFor } from '../../pipeline/latent.js';
import { GenerateSession, createJobBackend } from '../../pipeline/session.js';
import { Timeline } from '../../pipeline/timeline.js';
import { stepPolicies, type Preset } from '../../policies/presets.js';
import type { Backend } from '../../runtime/backend.js';
import { findFfmpeg, type Ffmpeg } from '../../video/ffmpeg.js';
import { makeOutputFolder, OutputFiles, writeFileAtomically } from '../../video/output.js';
import { sidecarJson } from '../../video/sidecar.js';
import { VIDEO_FORMATS } from '../../video/video-writer.js';
import { cliContext, type CliContext } from '../context.js';
import { parseFlags } from '../flags.js';
import { cidlSettings, memorySidecar } from '../memory-flags.js';
import { presetFromFlags } from '../policy-flags.js';
import { progressDisplay } from '../progress.js';
import { defaultModelDir } from '../../model/default-model.js';
import { checkDeclaredSize, checkPromptVocabulary } from '../model-limits.js';
import { addJobOptions, backendChoice, FORMAT_FLAG, JOB_FLAGS, settingsFor, sidecarFor, type JobFlags } from './generate.js';

export const RESULTS_FILE = 'results.jsonl';
const TRACE_FILE = 'trace.json';

export function register(program: Command): void {
  const command = program
    .command('batch')
    .description('generate one video per prompt in a file, keeping the model loaded from one prompt to the next')
    .argument('<file>', 'prompts: .txt (one per line, # comments), .jsonl or .csv (prompt plus per-line overrides)')
    .requiredOption('-o, --output <folder>', 'folder for the videos, their sidecars and results.jsonl (made if missing)')
    .option('--format <format>', `${VIDEO_FORMATS.join(' | ')}, for lines that name no output extension`, 'mp4')
    .option('--resume', 'skip prompts whose sidecar shows an earlier run finished them')
    .option('--shard <i/n>', 'take only every n-th prompt line, starting at the i-th (1-based), to split across machines');
  addJobOptions(command).action(async (file: string, options: Record<string, unknown>, self: Command) =>
    runBatch(file, options, cliContext(self)),
  );
}

const FlagsSchema = z.object({
  ...JOB_FLAGS,
  output: z.string().min(1, 'must name a folder'),
  format: FORMAT_FLAG,
  resume: z.boolean().optional(),
  shard: shardFlag.optional(),
});
type Flags = z.infer<typeof FlagsSchema>;

/** Everything a prompt's job needs that is the same for the whole batch. */
interface Batch {
  readonly flags: Flags;
  readonly file: string;
  readonly model: Model;
  readonly preset: Preset;
  readonly cidl: CidlSettings | undefined;
  readonly ffmpeg: Ffmpeg | undefined;
  readonly backend: Backend;
  readonly session: GenerateSession;
  readonly context: CliContext;
}

async function runBatch(file: string, options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(FlagsSchema, options);
  const preset = presetFromFlags(flags);
  const prompts = await readPromptFile(file);
  const folder = resolve(flags.output);
  const entries = prompts.entries.filter((entry) => inShard(entry.index, flags.shard));
  const plan = planOutputs(entries, folder, flags.format, displayPath(resolve(file)));
  const problems = [...prompts.problems.filter((problem) => inShard(problem.index, flags.shard)), ...plan.problems];
  for (const problem of problems) context.error(`${problem.message} (line skipped, the batch goes on)`);

  const finished = await finishedJobs(plan.jobs, flags);
  const todo = plan.jobs.filter((job) => !finished.has(job));
  const model = await loadModel(flags.model ?? defaultModelDir());
  const cidl = cidlSettings(flags, preset, model);
  const ffmpeg = todo.some((job) => job.format !== 'frames') ? await findFfmpeg(flags.ffmpeg) : undefined;
  const backend = createJobBackend(backendChoice(flags), cidl, model, context.logger);
  await makeOutputFolder(folder).catch(async (error: unknown) => {
    await backend.close();
    throw error;
  });

  const timeline = flags.trace === true ? new Timeline() : undefined;
  const session = new GenerateSession({ model, backend, logger: context.logger, cidl, timeline });
  const batch: Batch = { flags, file: resolve(file), model, preset, cidl, ffmpeg, backend, session, context };
  const results = new Map<number, BatchResult>(problems.map((problem) => [problem.line, invalid(problem)]));
  for (const job of plan.jobs.filter((job) => finished.has(job))) results.set(job.entry.line, skipped(job));

  const stop = stopOnSignal();
  try {
    for (const [i, job] of todo.entries()) {
      if (stop.requested) {
        results.set(job.entry.line, pending(job));
        continue;
      }
      context.status(`[${i + 1}/${todo.length}] line ${job.entry.line}: ${job.entry.prompt}`);
      const result = await runJob(batch, job);
      if (result.status === 'failed') context.error(`line ${job.entry.line}: ${result.error?.message} (the batch goes on)`);
      results.set(job.entry.line, result);
    }
  } finally {
    stop.dispose();
    await session.close().finally(() => backend.close());
  }

  const ordered = [...results.values()].sort((a, b) => a.line - b.line);
  await report(batch, folder, ordered, timeline);
}

async function report(batch: Batch, folder: string, results: readonly BatchResult[], timeline?: Timeline): Promise<void> {
  const { context } = batch;
  const resultsFile = join(folder, RESULTS_FILE);
  await writeFileAtomically(resultsFile, resultsJsonl(results));
  if (timeline !== undefined) await writeFileAtomically(join(folder, TRACE_FILE), JSON.stringify(timeline.toChromeTrace()));
  const failures = results.filter((result) => result.status !== 'done' && result.status !== 'skipped');
  const paint = (status: BatchStatus): string =>
    context.paint(status, status === 'done' || status === 'skipped' ? 'green' : status === 'pending' ? 'yellow' : 'red');
  context.result(summaryTable(results, resultsFile, paint), {
    ok: failures.length === 0,
    file: batch.file,
    folder,
    results: resultsFile,
    ...(timeline && { trace: join(folder, TRACE_FILE) }),
    prompts: results,
  });
  const first = failures.find((result) => result.error !== undefined);
  if (first?.error === undefined) return;
  const interrupted = results.some((result) => result.status === 'interrupted' || result.status === 'pending');
  const code: ErrorCode = interrupted ? 'INTERRUPTED' : first.error.code;
  const where = first.status === 'invalid' ? '' : `line ${first.line}: `;
  throw new SoraError(
    code,
    `${failures.length} of ${results.length} prompts not done (first: ${where}${first.error.message}); ` +
      `see ${displayPath(resultsFile)}`,
  );
}

/**
 * With --resume the finished outputs are skipped; any other existing output stops the batch before anything is
 * loaded, unless --overwrite, rather than failing prompt after prompt.
 */
async function finishedJobs(jobs: readonly PlannedJob[], flags: Flags): Promise<Set<PlannedJob>> {
  const finished = new Set<PlannedJob>();
  const existing: PlannedJob[] = [];
  for (const job of jobs) {
    if (flags.resume === true && (await isFinished(job))) finished.add(job);
    else if (await anyExists(job)) existing.push(job);
  }
  if (existing.length > 0 && flags.overwrite !== true) {
    const more = existing.length > 1 ? ` (and ${existing.length - 1} more)` : '';
    const hint = flags.resume === true ? 'pass --overwrite to replace them' : 'pass --resume to skip finished prompts, or --overwrite';
    throw new SoraError('IO', `${displayPath(existing[0]!.path)} or its sidecar already exists${more}; ${hint}`);
  }
  return finished;
}

/** The batch's flags with the line's overrides. */
function jobFlags(flags: JobFlags, entry: BatchEntry): JobFlags {
  return {
    ...flags,
    ...(entry.seed !== undefined && { seed: entry.seed }),
    ...(entry.steps !== undefined && { steps: entry.steps }),
    ...(entry.numFrames !== undefined && { numFrames: entry.numFrames }),
    ...(entry.resolution !== undefined && { resolution: entry.resolution }),
  };
}

/** One prompt: its output written and committed, or a failed result; only Ctrl-C gets past it (as `interrupted`). */
async function runJob(batch: Batch, job: PlannedJob): Promise<BatchResult> {
  const { flags, model, preset, cidl, ffmpeg, backend, session, context } = batch;
  const base = pending(job);
  let output: OutputFiles | undefined;
  const progress = progressDisplay(process.stderr);
  try {
    const settings = settingsFor(job.entry.prompt, jobFlags(flags, job.entry), model);
    const line = { line: job.entry.line };
    checkDeclaredSize(settings, model, flags.allowAnySize === true, context.logger, line);
    checkPromptVocabulary(job.entry.prompt, model, flags.strictPrompt === true, context.logger, line);
    output = await OutputFiles.prepare(job.path, job.sidecarPath, job.format === 'frames' ? 'directory' : 'file', flags.overwrite === true);
    const result = await session.run({
      settings,
      video: { format: job.format, path: output.tempPath, ...(ffmpeg && { ffmpegPath: ffmpeg.path }) },
      policies: stepPolicies(preset, latentShapeFor(settings).frames, context.logger),
      signal: output.interrupted,
      ...(context.options.quiet ? {} : { onProgress: (event) => progress.update(event) }),
    });
    const speedups = { preset: flags.preset, lpl: preset.lpl, tdtm: preset.tdtm };
    const sidecar = sidecarFor({ output: job.path, format: job.format, model, settings, speedups, result, ffmpeg, backend });
    const withBatch = { ...sidecar, ...memorySidecar(cidl, result), batch: { file: batch.file, line: job.entry.line } };
    await output.commit(sidecarJson(withBatch));
    return { ...base, status: 'done', seed: settings.seed, timingsMs: sidecar.timingsMs };
  } catch (error) {
    await output?.discard();
    const failure = isSoraError(error) ? error : new SoraError('INTERNAL', `unexpected error: ${errorMessage(error)}`, { cause: error });
    const status = failure.code === 'INTERRUPTED' ? 'interrupted' : 'failed';
    return { ...base, status, error: { code: failure.code, message: failure.message } };
  } finally {
    progress.finish();
  }
}

function pending(job: PlannedJob): BatchResult {
  const { line, prompt } = job.entry;
  return { line, status: 'pending', prompt, output: job.path, sidecar: job.sidecarPath };
}

function skipped(job: PlannedJob): BatchResult {
  return { ...pending(job), status: 'skipped' };
}

function invalid(problem: LineProblem): BatchResult {
  return { line: problem.line, status: 'invalid', error: { code: 'INPUT', message: problem.message } };
}

/**
 * Ctrl-C stops the batch after the prompt in progress, which is itself stopped at its next block and leaves no
 * partial file (see OutputFiles); a second one exits at once.
 */
function stopOnSignal(): { readonly requested: boolean; dispose(): void } {
  let requested = false;
  const onSignal = (): void => {
    if (requested) process.exit(ERROR_EXIT_CODES.INTERRUPTED);
    requested = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    get requested() {
      return requested;
    },
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
