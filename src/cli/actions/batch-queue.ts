/**
 * `batch <file> -o <folder> --queue redis://…`: the same batch, run by `worker` processes on any machine that shares
 * the output folder. This side enqueues one job per line, then follows them and writes the same summary and
 * results.jsonl as a local batch; `--detach` only enqueues. `batch status --queue …` shows the queue's counts.
 */
import { randomInt } from 'node:crypto';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import * as z from 'zod';
import { anyExists, earlierRun, RESULTS_FILE, type PlannedJob } from '../../batch/plan.js';
import { ResultsFile } from '../../batch/results-file.js';
import type { BatchResult } from '../../batch/results.js';
import { SoraError } from '../../errors.js';
import { defaultModelDir } from '../../model/default-model.js';
import { modelFingerprint } from '../../model/fingerprint.js';
import { loadModel } from '../../model/manifest.js';
import { checkReachable, queueFlag } from '../../queue/connection.js';
import { ensureFolderId } from '../../queue/folder-id.js';
import { followJobs, type JobOutcome, type RunningJob } from '../../queue/follow.js';
import { JOB_NAME, JOB_OPTIONS, openQueue, queueCounts } from '../../queue/jobs.js';
import { makeOutputFolder } from '../../video/folder-errors.js';
import { watchInterruption } from '../../video/interruption.js';
import { cliContext, type CliContext } from '../context.js';
import { parseFlags } from '../flags.js';
import { jobFor } from '../queue-job.js';
import { describeProgress } from '../progress.js';
import {
  invalid,
  ordered,
  pending,
  refuseExisting,
  runBatch,
  report,
  type BatchFlags,
  type QueuedBatch,
} from './batch.js';

const POLL_MS = 500;

const QueueFlagsSchema = z.object({ queue: queueFlag, detach: z.boolean().optional() });

/** Flags that belong to the machine running the blocks, with commander's values when not given. */
const WORKER_FLAGS: Readonly<Record<string, unknown>> = {
  backend: undefined,
  executionProvider: 'cpu',
  computeUnits: undefined,
  connect: undefined,
  device: undefined,
  token: undefined,
  ffmpeg: undefined,
  memoryBudget: undefined,
  ci: true,
  dl: true,
  trace: undefined,
};

/** The queue flags; a flag only a worker can act on is refused rather than silently dropped. */
export function queueFlags(options: Record<string, unknown>): z.infer<typeof QueueFlagsSchema> {
  const flags = parseFlags(QueueFlagsSchema, options);
  const given = Object.keys(WORKER_FLAGS).find((key) => options[key] !== WORKER_FLAGS[key]);
  if (given === undefined) return flags;
  const flag = given === 'ci' || given === 'dl' ? `no-${given}` : given.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
  throw new SoraError('USAGE', `--${flag}: each worker decides it for itself with --queue; pass it to \`ondevice-sora worker\``);
}

/** What `batch` runs (commands/batch.ts defines it): here, or with --queue through workers. */
export async function batchAction(file: string, options: Record<string, unknown>, self: Command): Promise<void> {
  await runBatch(file, options, cliContext(self), runQueuedBatch);
}

/** What `batch status` runs. */
export async function statusAction(self: Command): Promise<void> {
  await showStatus(self.optsWithGlobals(), cliContext(self));
}

interface Enqueued {
  readonly planned: PlannedJob;
  readonly id: string;
  readonly data: unknown;
}

async function runQueuedBatch(batch: QueuedBatch): Promise<void> {
  const { flags, options, folder, context } = batch;
  const { queue: address, detach } = queueFlags(options);
  await checkReachable(address);
  const model = await loadModel(flags.model ?? defaultModelDir());
  const fingerprint = modelFingerprint(model);
  await makeOutputFolder(folder);
  const folderId = await ensureFolderId(folder);
  const jobs = batch.jobs.map((planned): Enqueued => {
    const { entry } = planned;
    const seed = entry.seed ?? flags.seed ?? randomInt(0, 2 ** 32);
    const output = basename(planned.path);
    return { planned, ...jobFor({ entry, output, seed, options, model, fingerprint, folder: folderId, file: batch.file }) };
  });

  const queue = await openQueue(address, context.logger);
  try {
    // A line already queued (an earlier run of this command) is followed, not checked again: its output may be there.
    const queued = await Promise.all(jobs.map(async (job) => (await queue.getJob(job.id)) !== undefined));
    const fresh = jobs.filter((_, i) => !queued[i]);
    const finished = await finishedJobs(fresh.map((job) => job.planned), flags);
    const added = fresh.filter((job) => !finished.has(job.planned));
    await queue.addBulk(added.map((job) => ({ name: JOB_NAME, data: job.data, opts: { ...JOB_OPTIONS, jobId: job.id } })));
    const already = jobs.length - fresh.length;
    const line = `${added.length} jobs added to ${address.display} (${already} already there, ${finished.size} finished earlier)`;
    if (detach === true) {
      context.result(`${line}; follow them with the same command without --detach`, {
        queue: address.display,
        added: added.length,
        alreadyQueued: already,
        skipped: finished.size,
        jobs: jobs.map((job) => ({ line: job.planned.entry.line, id: job.id })),
        invalid: batch.problems.map((problem) => problem.line),
      });
      const [first] = batch.problems;
      if (first !== undefined) {
        const count = batch.problems.length;
        throw new SoraError('INPUT', `${count} line${count === 1 ? '' : 's'} not queued (first: ${first.message})`);
      }
      return;
    }
    context.status(line);
    const followed = jobs.filter((job) => !finished.has(job.planned));
    const { outcomes, stopped } = await follow(queue, followed, context);
    const { file } = batch;
    const results = new Map<number, BatchResult>(batch.problems.map((problem) => [problem.line, invalid(file, problem)]));
    for (const job of finished) results.set(job.entry.line, { ...pending(file, job), status: 'skipped' });
    for (const job of followed) results.set(job.planned.entry.line, resultOf(file, job.planned, outcomes.get(job.id)));
    const resultsFile = new ResultsFile(join(folder, RESULTS_FILE), file, batch.lines);
    await resultsFile.update(ordered(results));
    report({ context, file, folder }, resultsFile.path, ordered(results), stopped);
  } finally {
    await queue.close();
  }
}

interface Followed {
  readonly outcomes: Map<string, JobOutcome>;
  /** Aborted when a signal stopped the following (the jobs stay queued). */
  readonly stopped: AbortSignal;
}

async function follow(queue: Awaited<ReturnType<typeof openQueue>>, jobs: readonly Enqueued[], context: CliContext): Promise<Followed> {
  const watch = watchInterruption();
  const stop = {
    get requested() {
      return watch.signal.aborted;
    },
  };
  let shown = '';
  try {
    const outcomes = await followJobs(
      queue,
      jobs.map((job) => ({ id: job.id, line: job.planned.entry.line, data: job.data })),
      {
        pollMs: POLL_MS,
        stop,
        logger: context.logger,
        onFinished(job, outcome) {
          if (outcome.state === 'failed') context.error(`line ${job.line}: ${outcome.error.message} (the batch goes on)`);
          else context.status(`line ${job.line}: done by ${outcome.result.worker}`);
        },
        onPoll(finished, running) {
          if (finished === jobs.length) return;
          const text = `[${finished}/${jobs.length}] ${running.map(runningText).join(', ') || 'waiting for workers'}`;
          if (text !== shown) context.status(text);
          shown = text;
        },
      },
    );
    if (stop.requested) context.error('stopped following; the jobs stay queued: run the same command again to follow them');
    return { outcomes, stopped: watch.signal };
  } finally {
    watch.dispose();
  }
}

function runningText(job: RunningJob): string {
  const progress = describeProgress(job.progress);
  return progress === undefined ? `line ${job.line}` : `line ${job.line} ${progress}`;
}

function resultOf(file: string, job: PlannedJob, outcome: JobOutcome | undefined): BatchResult {
  const base = pending(file, job);
  if (outcome === undefined) return base;
  if (outcome.state === 'failed') return { ...base, status: 'failed', error: outcome.error, attempts: outcome.attempts };
  const { seed, timingsMs, worker } = outcome.result;
  return { ...base, status: 'done', seed, timingsMs, attempts: outcome.attempts, worker };
}

async function showStatus(options: Record<string, unknown>, context: CliContext): Promise<void> {
  const { queue: address } = parseFlags(z.object({ queue: queueFlag }), options);
  await checkReachable(address);
  const queue = await openQueue(address, context.logger);
  try {
    const counts = await queueCounts(queue);
    // Undefined where Redis does not allow CLIENT LIST (managed services often do not).
    const workers = await queue.getWorkersCount().catch(() => undefined);
    const tally = Object.entries(counts)
      .map(([state, count]) => `${count} ${state}`)
      .join(', ');
    const connected = workers === undefined ? '' : `; ${workers} worker${workers === 1 ? '' : 's'} connected`;
    context.result(`${address.display}: ${tally}${connected}`, { queue: address.display, counts, workers: workers ?? null });
  } finally {
    await queue.close();
  }
}

/**
 * With --resume, lines whose output an earlier run finished (they are not queued again); any other output already
 * there stops the batch before anything is queued, unless --overwrite (a worker still replaces only what this tool
 * wrote, and a damaged earlier output of the same line).
 */
async function finishedJobs(jobs: readonly PlannedJob[], flags: BatchFlags): Promise<Set<PlannedJob>> {
  const finished = new Set<PlannedJob>();
  const existing: PlannedJob[] = [];
  for (const job of jobs) {
    const earlier = flags.resume === true ? await earlierRun(job) : 'other';
    if (earlier === 'finished') finished.add(job);
    else if (earlier === 'other' && (await anyExists(job))) existing.push(job);
  }
  refuseExisting(existing, flags);
  return finished;
}
