/**
 * `worker --queue redis://… -o <folder>`: takes the jobs `batch --queue` added, one loaded model per concurrent job
 * (the GenerateSession a local batch uses, kept from one job to the next), and writes each video and sidecar into
 * its path to the batch's shared output folder, renamed into place when complete. Videos never travel through
 * Redis: it keeps everything in memory, and a benchmark's worth of videos would not fit there.
 */
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Job, Worker } from 'bullmq';
import type { Command } from 'commander';
import * as z from 'zod';
import { earlierRun, planOutputs, type PlannedJob } from '../../batch/plan.js';
import type { BatchResult } from '../../batch/results.js';
import { displayPath } from '../../display-path.js';
import { errorMessage, isSoraError, SoraError, type ErrorCode } from '../../errors.js';
import { defaultModelDir } from '../../model/default-model.js';
import { modelFingerprint } from '../../model/fingerprint.js';
import { loadModel, type Model } from '../../model/manifest.js';
import type { CidlSettings } from '../../pipeline/ci-dl.js';
import type { GenerateProgress } from '../../pipeline/generate.js';
import { createCheckedJobBackend, GenerateSession } from '../../pipeline/session.js';
import { PRESETS } from '../../policies/presets.js';
import { checkReachable, queueFlag } from '../../queue/connection.js';
import { FOLDER_ID_FILE, readFolderId } from '../../queue/folder-id.js';
import { failureReason, startWorker, WORKER_ID, type JobResult } from '../../queue/jobs.js';
import type { Backend } from '../../runtime/backend.js';
import { findFfmpeg, type Ffmpeg } from '../../video/ffmpeg.js';
import { OutputFiles } from '../../video/output.js';
import { cliContext, type CliContext } from '../context.js';
import { integerFlag, parseFlags } from '../flags.js';
import { cidlSettings, MEMORY_FLAGS } from '../memory-flags.js';
import { presetFromFlags } from '../policy-flags.js';
import { parseJob, type QueuedJob } from '../queue-job.js';
import { asSoraError, pending, runJob, type BatchFlags } from './batch.js';
import { LOCAL_BACKEND_FLAGS, localBackendChoice } from '../backend-flags.js';
import { JOB_FLAGS } from './generate.js';

const FlagsSchema = z.object({
  queue: queueFlag,
  output: z.string().min(1, 'must name a folder'),
  model: JOB_FLAGS.model,
  concurrency: integerFlag(1, 64, 'must be an integer from 1 to 64'),
  stallTimeout: integerFlag(1, 3600, 'must be a number of seconds from 1 to 3600'),
  ...LOCAL_BACKEND_FLAGS,
  ffmpeg: JOB_FLAGS.ffmpeg,
  ...MEMORY_FLAGS,
});
type Flags = z.infer<typeof FlagsSchema>;

/** Job problems no other worker or later attempt can fix: failed at once instead of retried. */
const PERMANENT: ReadonlySet<ErrorCode> = new Set(['INPUT', 'USAGE']);
/** Progress goes to the queue at most this often (and at every change of phase). */
const PROGRESS_MS = 500;

/** One loaded model: a backend and the session that keeps its blocks. */
interface Slot {
  readonly backend: Backend;
  readonly session: GenerateSession;
}

interface WorkerState {
  readonly flags: Flags;
  readonly folder: string;
  readonly model: Model;
  readonly fingerprint: string;
  readonly cidl: CidlSettings | undefined;
  readonly context: CliContext;
  readonly free: Slot[];
  readonly slots: Slot[];
  ffmpeg?: Promise<Ffmpeg>;
  /** Set when a job showed this worker cannot serve the queue (another model or folder): it stops. */
  fatal?: SoraError;
  counts: { done: number; failed: number; handedBack: number };
}

/** What `worker` runs (commands/ defines its options). */
export async function workerAction(options: Record<string, unknown>, self: Command): Promise<void> {
  await runWorker(options, cliContext(self));
}

async function runWorker(options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(FlagsSchema, options);
  const folder = resolve(flags.output);
  const info = await stat(folder).catch(() => undefined);
  if (info?.isDirectory() !== true) throw new SoraError('IO', `--output: ${displayPath(folder)} is not a folder (mount the batch's output folder)`);
  await checkReachable(flags.queue);
  const model = await loadModel(flags.model ?? defaultModelDir());
  // CI-DL never changes a video, only memory: it follows this worker's --memory-budget, not the job's preset.
  const cidl = cidlSettings(flags, PRESETS.baseline, model);
  const state: WorkerState = {
    flags,
    folder,
    model,
    fingerprint: modelFingerprint(model),
    cidl,
    context,
    free: [],
    slots: [],
    counts: { done: 0, failed: 0, handedBack: 0 },
  };
  // The first slot now, so a backend that cannot run this model is a one-line error before any job is taken.
  state.free.push(await openSlot(state));
  const worker: Worker = await startWorker(
    flags.queue,
    async (job, token) => processJob(state, worker, job, token),
    { concurrency: flags.concurrency, stallSeconds: flags.stallTimeout },
    context.logger,
  );
  const closed = new Promise<void>((done) => worker.once('closed', done));
  const drain = (): void => void worker.close();
  process.on('SIGINT', drain);
  process.on('SIGTERM', drain);
  context.status(`worker ${WORKER_ID}: model ${model.name} (${state.fingerprint.slice(0, 12)}), jobs from ${flags.queue.display} into ${displayPath(folder)}; Ctrl-C to stop`);
  try {
    await closed;
  } finally {
    process.off('SIGINT', drain);
    process.off('SIGTERM', drain);
    await closeSlots(state);
  }
  if (state.fatal !== undefined) throw state.fatal;
  const { done, failed, handedBack } = state.counts;
  context.result(`worker stopped: ${done} done, ${failed} failed, ${handedBack} handed back`, { worker: WORKER_ID, ...state.counts });
}

async function processJob(state: WorkerState, worker: Worker, job: Job, token: string | undefined): Promise<JobResult> {
  const { UnrecoverableError, WaitingError } = await import('bullmq'); // loaded by startWorker already
  const parsed = parseJob(job.data);
  if (typeof parsed === 'string') {
    state.counts.failed++;
    state.context.error(`job ${job.id}: ${parsed} (rejected)`);
    throw new UnrecoverableError(failureReason('INPUT', `job data: ${parsed}`));
  }
  const refusal = await refusalOf(state, parsed, job);
  if (refusal !== undefined) {
    // Handed back first, so another worker takes it; then this one stops, since it would refuse every such job.
    state.fatal = refusal;
    await handBack(state, job, token);
    void worker.close();
    throw new WaitingError();
  }
  const [planned] = planOutputs([parsed.entry], state.folder, parsed.flags.format, parsed.source.file).jobs as [PlannedJob];
  // An attempt whose worker died after renaming the output into place but before reporting it left a finished
  // output: it is this job's (same prompt, seed and name), so it is reported rather than refused as existing.
  const earlier = parsed.flags.overwrite === true ? undefined : await finishedEarlier(planned, parsed.entry.seed);
  if (earlier !== undefined) {
    state.counts.done++;
    return { seed: parsed.entry.seed, timingsMs: earlier, worker: WORKER_ID, reused: true };
  }
  const slot = state.free.pop() ?? (await openSlot(state));
  let result: BatchResult;
  try {
    result = await runQueuedJob(state, slot, parsed, planned, job);
  } finally {
    state.free.push(slot);
  }
  if (result.status === 'interrupted') {
    await handBack(state, job, token);
    throw new WaitingError();
  }
  const line = parsed.source.line;
  if (result.status === 'done') {
    state.counts.done++;
    state.context.logger.info({ job: job.id, line }, `line ${line}: done`);
    return { seed: result.seed ?? parsed.entry.seed, timingsMs: result.timingsMs ?? {}, worker: WORKER_ID, reused: false };
  }
  const error = result.error ?? { code: 'INTERNAL', message: 'failed without a reason' };
  state.counts.failed++;
  state.context.error(`line ${line}: ${error.message} (attempt ${job.attemptsMade + 1} of ${job.opts.attempts ?? 1})`);
  const reason = failureReason(error.code, error.message);
  throw PERMANENT.has(error.code) ? new UnrecoverableError(reason) : new Error(reason);
}

/** Why this worker must not run the job (another model, another output folder), or undefined. */
async function refusalOf(state: WorkerState, job: QueuedJob, queued: Job): Promise<SoraError | undefined> {
  const { model, fingerprint, folder } = state;
  const what = `job ${queued.id} (line ${job.source.line})`;
  if (job.model.fingerprint !== fingerprint) {
    return new SoraError(
      'MODEL',
      `${what} wants model ${job.model.name} (${job.model.fingerprint.slice(0, 12)}), this worker has ${model.name} ` +
        `(${fingerprint.slice(0, 12)}); handed it back and stopped: start workers with the batch's --model`,
    );
  }
  // Read at every job: the first batch queued into the folder makes the id after this worker started.
  if (job.folder !== (await readFolderId(folder))) {
    return new SoraError(
      'IO',
      `${what} writes into another output folder than ${displayPath(folder)} (its ${FOLDER_ID_FILE} differs or is missing); ` +
        "handed it back and stopped: pass this machine's path to the batch's folder as --output",
    );
  }
  return undefined;
}

/** Back to the waiting list at once, with no attempt counted: the job did nothing wrong. */
async function handBack(state: WorkerState, job: Job, token: string | undefined): Promise<void> {
  await job.moveToWait(token);
  state.counts.handedBack++;
  state.context.logger.info({ job: job.id }, 'job handed back to the queue');
}

async function runQueuedJob(state: WorkerState, slot: Slot, job: QueuedJob, planned: PlannedJob, queued: Job): Promise<BatchResult> {
  const { flags, folder, model, cidl, context } = state;
  const batchFlags: BatchFlags = { ...flags, ...job.flags, output: folder };
  const file = job.source.file;
  let preset;
  let ffmpeg;
  let output: OutputFiles;
  try {
    preset = presetFromFlags(job.flags);
    ffmpeg = planned.format === 'frames' ? undefined : await ffmpegOf(state);
    output = await claimOutput(planned, String(queued.id), job.flags.overwrite === true);
  } catch (error) {
    const failure = asSoraError(error);
    return { ...pending(file, planned), status: 'failed', error: { code: failure.code, message: failure.message } };
  }
  const onProgress = throttledProgress(queued, context);
  return runJob({ flags: batchFlags, file, model, preset, cidl, ffmpeg, ...slot, context, onProgress }, planned, output);
}

/**
 * The job's output and sidecar, claimed as a local batch claims them (claim.ts). The claim names the queue job, so a
 * later attempt of the same job takes over what an attempt on a killed worker left, on any host: the queue gives a
 * job to one worker at a time. What is there is replaced only with the batch's --overwrite, or when it is this
 * line's own damaged earlier output, and only if this tool wrote it.
 */
async function claimOutput(planned: PlannedJob, jobId: string, overwrite: boolean): Promise<OutputFiles> {
  const shape = planned.format === 'frames' ? 'directory' : 'file';
  const output = await OutputFiles.claim(planned.path, planned.sidecarPath, shape, 'worker', jobId);
  try {
    await output.checkExisting(overwrite || (await earlierRun(planned)) === 'damaged');
  } catch (error) {
    await output.discard();
    throw error;
  }
  return output;
}

const EarlierSidecar = z.object({ seed: z.number(), timingsMs: z.record(z.string(), z.number()) });

/** The timings of a finished output of this job with this seed, or undefined if there is none. */
async function finishedEarlier(planned: PlannedJob, seed: number): Promise<Record<string, number> | undefined> {
  if ((await earlierRun(planned)) !== 'finished') return undefined;
  try {
    const sidecar = EarlierSidecar.parse(JSON.parse(await readFile(planned.sidecarPath, 'utf8')));
    return sidecar.seed === seed ? sidecar.timingsMs : undefined;
  } catch {
    return undefined;
  }
}

/** Found once, at the first job that encodes; a worker without ffmpeg fails those jobs (and others retry them). */
async function ffmpegOf(state: WorkerState): Promise<Ffmpeg> {
  state.ffmpeg ??= findFfmpeg(state.flags.ffmpeg);
  return state.ffmpeg.catch((error: unknown) => {
    state.ffmpeg = undefined;
    throw error;
  });
}

function throttledProgress(job: Job, context: CliContext): (progress: GenerateProgress) => void {
  let last: { phase: string; at: number } | undefined;
  return (progress) => {
    const now = Date.now();
    if (last !== undefined && last.phase === progress.phase && now - last.at < PROGRESS_MS) return;
    last = { phase: progress.phase, at: now };
    job.updateProgress(progress).catch((error: unknown) => context.logger.debug({ error: errorMessage(error) }, 'progress not reported'));
  };
}

async function openSlot(state: WorkerState): Promise<Slot> {
  const { flags, model, cidl, context } = state;
  const backend = await createCheckedJobBackend(localBackendChoice(flags), cidl, model, context.logger);
  const slot = { backend, session: new GenerateSession({ model, backend, logger: context.logger, cidl, timeline: undefined }) };
  state.slots.push(slot);
  return slot;
}

async function closeSlots(state: WorkerState): Promise<void> {
  for (const { session, backend } of state.slots) await session.close().finally(() => backend.close());
}
