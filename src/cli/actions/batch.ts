/** `batch <file> -o <folder>`: one video per prompt line, every block loaded once for the whole batch. */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as z from 'zod';
import { inShard, shardFlag } from '../../batch/shard.js';
import { anyExists, earlierRun, planOutputs, RESULTS_FILE, traceFileName, type PlannedJob } from '../../batch/plan.js';
import { readPromptFile, type BatchEntry, type LineProblem } from '../../batch/prompt-file.js';
import { ResultsFile } from '../../batch/results-file.js';
import { summaryTable, type BatchResult, type BatchStatus } from '../../batch/results.js';
import { displayPath } from '../../display-path.js';
import { errorMessage, isSoraError, SoraError } from '../../errors.js';
import type { Model } from '../../model/manifest.js';
import type { GenerateProgress } from '../../pipeline/generate.js';
import type { CidlSettings } from '../../pipeline/ci-dl.js';
import { latentShapeFor } from '../../pipeline/latent.js';
import { GenerateSession, openJobBackend } from '../../pipeline/session.js';
import { Timeline } from '../../pipeline/timeline.js';
import type { VideoSize } from '../../pipeline/timesteps.js';
import { stepPolicies, type Preset } from '../../policies/presets.js';
import type { Backend } from '../../runtime/backend.js';
import { claimPath, type Claim } from '../../video/claim.js';
import { findFfmpeg, type Ffmpeg } from '../../video/ffmpeg.js';
import { makeOutputFolder } from '../../video/folder-errors.js';
import { watchInterruption, type InterruptionWatch } from '../../video/interruption.js';
import { OutputFiles, writeClaimed } from '../../video/output.js';
import { checkReplaceable, NOT_OURS, type OutputKind } from '../../video/replaceable.js';
import { sidecarJson } from '../../video/sidecar.js';
import { checkFrameCount } from '../../video/video-writer.js';
import type { CliContext } from '../context.js';
import { parseFlags } from '../flags.js';
import { jobBackendChoice } from '../backend-flags.js';
import { jobMemory, memorySidecar } from '../memory-flags.js';
import { presetFromFlags } from '../policy-flags.js';
import { progressDisplay } from '../progress.js';
import { checkDeclaredSize, checkPromptVocabulary } from '../model-limits.js';
import { FORMAT_FLAG, JOB_FLAGS, loadModelToRun, settingsFor, sidecarFor, sidecarSpeedups, type JobFlags } from './generate.js';

/** A planned batch handed to a job queue instead of run here (batch-queue.ts, which builds on this module). */
export interface QueuedBatch {
  readonly file: string;
  readonly folder: string;
  readonly flags: BatchFlags;
  readonly options: Record<string, unknown>;
  readonly jobs: readonly PlannedJob[];
  readonly problems: readonly LineProblem[];
  /** Every line of the prompt file, for results.jsonl (ResultsFile). */
  readonly lines: ReadonlySet<number>;
  readonly context: CliContext;
}

const FlagsSchema = z.object({
  ...JOB_FLAGS,
  output: z.string('is required: the folder for the videos').min(1, 'must name a folder'),
  format: FORMAT_FLAG,
  resume: z.boolean().optional(),
  shard: shardFlag.optional(),
});
export type BatchFlags = z.infer<typeof FlagsSchema>;

/** Everything a prompt's job needs that is the same for the whole batch. */
export interface Batch {
  readonly flags: BatchFlags;
  readonly file: string;
  readonly model: Model;
  readonly preset: Preset;
  readonly cidl: CidlSettings | undefined;
  readonly ffmpeg: Ffmpeg | undefined;
  readonly backend: Backend;
  readonly session: GenerateSession;
  readonly context: CliContext;
  /** Sees every progress event (a queue worker reports them to the queue). */
  readonly onProgress?: (progress: GenerateProgress) => void;
}

/** A batch's trace is replaced by the next run's, but only if it is a trace (Timeline.toChromeTrace's JSON). */
const TRACE_OUTPUT: OutputKind = {
  async inTheWay(path, stats) {
    if (!stats.isFile()) return 'is not a regular file; cannot replace it with the batch trace';
    const start = (await readFile(path, 'utf8').catch(() => '')).slice(0, 16);
    return start.startsWith('{"traceEvents":') ? undefined : `is not a trace this tool wrote; ${NOT_OURS}`;
  },
};

export async function runBatch(
  file: string,
  options: Record<string, unknown>,
  context: CliContext,
  runQueued: (batch: QueuedBatch) => Promise<void>,
): Promise<void> {
  const flags = parseFlags(FlagsSchema, options);
  const preset = presetFromFlags(flags);
  const prompts = await readPromptFile(file);
  const promptFile = resolve(file);
  const folder = resolve(flags.output);
  const entries = prompts.entries.filter((entry) => inShard(entry.index, flags.shard));
  const plan = planOutputs(entries, folder, flags.format, displayPath(promptFile));
  const problems = [...prompts.problems.filter((problem) => inShard(problem.index, flags.shard)), ...plan.problems];
  if (entries.length === 0 && problems.length === 0) return reportEmptyShard(prompts.entries.length + prompts.problems.length, flags, context);
  for (const problem of problems) context.error(`${problem.message} (line skipped, the batch goes on)`);
  const lines = new Set([...prompts.entries, ...prompts.problems].map((entry) => entry.line));
  if (options.queue !== undefined) return runQueued({ file: promptFile, folder, flags, options, jobs: plan.jobs, problems, lines, context });

  // Before any model work: every output claimed (a second run into the same files fails here, naming this one),
  // what is there checked, and results.jsonl updated, which proves the folder takes new files.
  await makeOutputFolder(folder);
  const watch = watchInterruption();
  const outputs = new Map<PlannedJob, OutputFiles>();
  let trace: Claim | undefined;
  try {
    for (const job of plan.jobs) outputs.set(job, await OutputFiles.claim(job.path, job.sidecarPath, job.format === 'frames' ? 'directory' : 'file', 'batch'));
    if (flags.trace === true) trace = await claimTrace(join(folder, traceFileName(flags.shard)));
    const resultsFile = new ResultsFile(join(folder, RESULTS_FILE), promptFile, lines);
    const results = new Map<number, BatchResult>(problems.map((problem) => [problem.line, invalid(promptFile, problem)]));
    const todo = await sortJobs(plan.jobs, outputs, flags, results, promptFile, context);
    await resultsFile.update(ordered(results));
    const timeline = trace === undefined ? undefined : new Timeline();
    const batch = await generateAll({ flags, preset, file: promptFile, todo, outputs, results, resultsFile, watch, timeline, context });
    if (trace !== undefined && timeline !== undefined) await writeClaimed(trace, JSON.stringify(timeline.toChromeTrace()));
    report({ context, file: promptFile, folder }, resultsFile.path, ordered(results), watch.signal, trace?.path);
  } finally {
    for (const output of outputs.values()) await output.discard();
    trace?.release();
    watch.dispose();
  }
}

interface BatchRun {
  readonly flags: BatchFlags;
  readonly preset: Preset;
  readonly file: string;
  readonly todo: readonly PlannedJob[];
  readonly outputs: ReadonlyMap<PlannedJob, OutputFiles>;
  readonly results: Map<number, BatchResult>;
  readonly resultsFile: ResultsFile;
  readonly watch: InterruptionWatch;
  readonly timeline: Timeline | undefined;
  readonly context: CliContext;
}

/** Loads the model once and runs the prompts in turn, recording each result as it comes; a signal stops the rest. */
async function generateAll(run: BatchRun): Promise<Batch> {
  const { flags, preset, file, todo, outputs, results, resultsFile, watch, timeline, context } = run;
  const model = await loadModelToRun(flags.model, context.logger);
  const choice = jobBackendChoice(flags);
  const sizes = todo.flatMap((job) => jobSize(flags, job, model));
  const ffmpeg = todo.some((job) => job.format !== 'frames') ? await findFfmpeg(flags.ffmpeg) : undefined;
  const { backend, cidl } = await openJobBackend(choice, jobMemory(flags, preset, model, sizes), model, context.logger);
  const session = new GenerateSession({ model, backend, logger: context.logger, cidl, timeline });
  const batch: Batch = { flags, file, model, preset, cidl, ffmpeg, backend, session, context };
  try {
    for (const [i, job] of todo.entries()) {
      if (watch.signal.aborted) break;
      context.status(`[${i + 1}/${todo.length}] line ${job.entry.line}: ${job.entry.prompt}`);
      const result = await runJob(batch, job, outputs.get(job)!);
      if (result.status === 'failed') context.error(`line ${job.entry.line}: ${result.error?.message} (the batch goes on)`);
      results.set(job.entry.line, result);
      await resultsFile.update(ordered(results));
    }
  } finally {
    await session.close().finally(() => backend.close());
  }
  return batch;
}

export function ordered(results: ReadonlyMap<number, BatchResult>): BatchResult[] {
  return [...results.values()].sort((a, b) => a.line - b.line);
}

async function claimTrace(path: string): Promise<Claim> {
  const claim = await claimPath(path, { command: 'batch' });
  try {
    await checkReplaceable(path, TRACE_OUTPUT, true);
  } catch (error) {
    claim.release();
    throw error;
  }
  return claim;
}

/** `--shard I/N` on a file with fewer than I prompt lines: nothing to do, and no folder or results made for it. */
function reportEmptyShard(promptLines: number, flags: BatchFlags, context: CliContext): void {
  const shard = `${flags.shard!.index}/${flags.shard!.count}`;
  const lines = `${promptLines} prompt line${promptLines === 1 ? '' : 's'}`;
  context.result(`0 prompts: shard ${shard} takes none of the file's ${lines}; nothing to do`, { ok: true, shard, prompts: [] });
}

/** The summary table; a batch with a prompt not done (or stopped by a signal) fails with the first reason. */
export function report(
  batch: { readonly context: CliContext; readonly file: string; readonly folder: string },
  resultsFile: string,
  results: readonly BatchResult[],
  stopped: AbortSignal,
  trace?: string,
): void {
  const { context } = batch;
  const failures = results.filter((result) => result.status !== 'done' && result.status !== 'skipped');
  const paint = (status: BatchStatus): string =>
    context.paint(status, status === 'done' || status === 'skipped' ? 'green' : status === 'pending' ? 'yellow' : 'red');
  context.result(summaryTable(results, resultsFile, paint), {
    ok: failures.length === 0,
    file: batch.file,
    folder: batch.folder,
    results: resultsFile,
    ...(trace && { trace }),
    prompts: results,
  });
  const signal = stopped.aborted ? (stopped.reason as SoraError) : undefined;
  const first = failures.find((result) => result.error !== undefined);
  if (first?.error === undefined && signal === undefined) return;
  const where = first === undefined || first.status === 'invalid' ? '' : `line ${first.line}: `;
  const cause = first?.error === undefined ? signal!.message : `${where}${first.error.message}`;
  throw new SoraError(
    signal?.code ?? first!.error!.code,
    `${failures.length} of ${results.length} prompts not done (first: ${cause}); see ${displayPath(resultsFile)}`,
  );
}

/**
 * Sorts the claimed jobs: with --resume, those finished by an earlier run are skipped (and their claims given back)
 * and those whose own earlier output is damaged are made again; any other existing output stops the batch before
 * anything is loaded, unless --overwrite, rather than failing prompt after prompt. An output --overwrite may not
 * replace (replaceable.ts) fails its line only. Returns the jobs to run; `results` gets the others.
 */
async function sortJobs(
  jobs: readonly PlannedJob[],
  outputs: ReadonlyMap<PlannedJob, OutputFiles>,
  flags: BatchFlags,
  results: Map<number, BatchResult>,
  file: string,
  context: CliContext,
): Promise<PlannedJob[]> {
  const todo: { job: PlannedJob; replace: boolean }[] = [];
  const existing: PlannedJob[] = [];
  for (const job of jobs) {
    const earlier = flags.resume === true ? await earlierRun(job) : 'other';
    if (earlier === 'finished') {
      results.set(job.entry.line, { ...pending(file, job), status: 'skipped' });
      await outputs.get(job)!.discard();
      continue;
    }
    if (earlier === 'other' && (await anyExists(job))) existing.push(job);
    todo.push({ job, replace: earlier === 'damaged' || flags.overwrite === true });
  }
  refuseExisting(existing, flags);
  const runnable: PlannedJob[] = [];
  for (const { job, replace } of todo) {
    const output = outputs.get(job)!;
    const problem = await output.checkExisting(replace).then(
      () => undefined,
      (error: unknown) => error,
    );
    if (problem === undefined) {
      results.set(job.entry.line, pending(file, job));
      runnable.push(job);
      continue;
    }
    await output.discard();
    const failure = asSoraError(problem);
    context.error(`line ${job.entry.line}: ${failure.message} (the batch goes on)`);
    results.set(job.entry.line, { ...pending(file, job), status: 'failed', error: { code: failure.code, message: failure.message } });
  }
  return runnable;
}

/**
 * Outputs already there that no earlier run of these lines finished stop the batch before anything is loaded or
 * queued, unless --overwrite, rather than failing prompt after prompt.
 */
export function refuseExisting(existing: readonly PlannedJob[], flags: Pick<BatchFlags, 'overwrite' | 'resume'>): void {
  if (existing.length > 0 && flags.overwrite !== true) {
    const more = existing.length > 1 ? ` (and ${existing.length - 1} more)` : '';
    const hint = flags.resume === true ? 'pass --overwrite to replace them' : 'pass --resume to skip finished prompts, or --overwrite';
    throw new SoraError('IO', `${displayPath(existing[0]!.path)} or its sidecar already exists${more}; ${hint}`);
  }
}

/** The batch's flags with the line's overrides. */
/** The job's video size, for the memory budget's check before any work; none when its line is invalid (reported at its turn). */
function jobSize(flags: JobFlags, job: PlannedJob, model: Model): VideoSize[] {
  try {
    return [settingsFor(job.entry.prompt, jobFlags(flags, job.entry), model)];
  } catch {
    return [];
  }
}

function jobFlags(flags: JobFlags, entry: BatchEntry): JobFlags {
  return {
    ...flags,
    ...(entry.seed !== undefined && { seed: entry.seed }),
    ...(entry.steps !== undefined && { steps: entry.steps }),
    ...(entry.numFrames !== undefined && { numFrames: entry.numFrames }),
    ...(entry.resolution !== undefined && { resolution: entry.resolution }),
  };
}

export function asSoraError(error: unknown): SoraError {
  return isSoraError(error) ? error : new SoraError('INTERNAL', `unexpected error: ${errorMessage(error)}`, { cause: error });
}

/** One prompt: its output written and committed, or a failed result; a signal gets past it only as `interrupted`. */
export async function runJob(batch: Batch, job: PlannedJob, output: OutputFiles): Promise<BatchResult> {
  const { flags, model, preset, cidl, ffmpeg, backend, session, context } = batch;
  const base = pending(batch.file, job);
  const progress = progressDisplay(process.stderr);
  try {
    const settings = settingsFor(job.entry.prompt, jobFlags(flags, job.entry), model);
    const line = { line: job.entry.line };
    checkDeclaredSize(settings, model, flags.allowAnySize === true, context.logger, line);
    checkPromptVocabulary(job.entry.prompt, model, flags.strictPrompt === true, context.logger, line);
    await output.open();
    const result = await session.run({
      settings,
      video: { format: job.format, path: output.tempPath, ...(ffmpeg && { ffmpegPath: ffmpeg.path }) },
      policies: stepPolicies(preset, latentShapeFor(settings).frames, context.logger),
      signal: output.interrupted,
      onProgress: (event) => {
        if (!context.options.quiet) progress.update(event);
        batch.onProgress?.(event);
      },
    });
    const speedups = sidecarSpeedups(flags.preset, preset);
    await checkFrameCount(output.tempPath, job.format, result.frames, ffmpeg?.path);
    const bytes = await output.writtenBytes();
    const sidecar = sidecarFor({ output: job.path, bytes, format: job.format, model, settings, speedups, result, ffmpeg, backend });
    const withBatch = { ...sidecar, ...memorySidecar(cidl, result), batch: { file: batch.file, line: job.entry.line } };
    await output.commit(sidecarJson(withBatch));
    return { ...base, status: 'done', seed: settings.seed, timingsMs: sidecar.timingsMs };
  } catch (error) {
    await output.discard();
    const failure = asSoraError(error);
    const status = failure.code === 'INTERRUPTED' || failure.code === 'TERMINATED' ? 'interrupted' : 'failed';
    return { ...base, status, error: { code: failure.code, message: failure.message } };
  } finally {
    progress.finish();
  }
}

export function pending(file: string, job: PlannedJob): BatchResult {
  const { line, prompt } = job.entry;
  return { file, line, status: 'pending', prompt, output: job.path, sidecar: job.sidecarPath };
}

export function invalid(file: string, problem: LineProblem): BatchResult {
  return { file, line: problem.line, status: 'invalid', error: { code: 'INPUT', message: problem.message } };
}
