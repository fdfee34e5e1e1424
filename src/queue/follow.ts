/**
 * Following a batch's jobs until each has finished: polls every job's record (a poll waits out a Redis restart,
 * since commands wait for the reconnect) and adds back a job that vanished (a Redis that restarted without
 * persistence), which its deterministic id makes safe.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job, Queue } from 'bullmq';
import type { ErrorCode } from '../errors.js';
import type { Logger } from '../logging.js';
import { JOB_NAME, JOB_OPTIONS, JobResultSchema, parseFailureReason, type JobResult } from './jobs.js';

export type JobOutcome =
  | { readonly state: 'done'; readonly result: JobResult; readonly attempts: number }
  | { readonly state: 'failed'; readonly error: { readonly code: ErrorCode; readonly message: string }; readonly attempts: number };

export interface FollowedJob {
  readonly id: string;
  readonly line: number;
  /** What was enqueued, to add it again if it vanished. */
  readonly data: unknown;
}

/** A job still running: its line and the last progress its worker reported. */
export interface RunningJob {
  readonly line: number;
  readonly progress: unknown;
}

export interface FollowOptions {
  readonly pollMs: number;
  readonly stop: { readonly requested: boolean };
  readonly logger: Logger;
  onFinished(job: FollowedJob, outcome: JobOutcome): void;
  /** After every poll: how many are finished, and those running. */
  onPoll(finished: number, running: readonly RunningJob[]): void;
}

/** Until every job finished or `stop` was requested; unfinished jobs are absent from the result. */
export async function followJobs(queue: Queue, jobs: readonly FollowedJob[], options: FollowOptions): Promise<Map<string, JobOutcome>> {
  const outcomes = new Map<string, JobOutcome>();
  const open = new Map(jobs.map((job) => [job.id, job]));
  while (open.size > 0 && !options.stop.requested) {
    const running: RunningJob[] = [];
    await Promise.all(
      [...open.values()].map(async (followed) => {
        const job = await (await import('bullmq')).Job.fromId(queue, followed.id);
        if (job === undefined) {
          options.logger.warn({ job: followed.id }, `the job of line ${followed.line} vanished from the queue (a Redis restart without persistence?); adding it again`);
          await queue.add(JOB_NAME, followed.data, { ...JOB_OPTIONS, jobId: followed.id });
          return;
        }
        const outcome = job.finishedOn === undefined ? undefined : await outcomeOf(job);
        if (outcome === undefined) {
          if (job.processedOn !== undefined) running.push({ line: followed.line, progress: job.progress });
          return;
        }
        outcomes.set(followed.id, outcome);
        open.delete(followed.id);
        options.onFinished(followed, outcome);
      }),
    );
    options.onPoll(outcomes.size, running.sort((a, b) => a.line - b.line));
    if (open.size > 0) await sleep(options.pollMs);
  }
  return outcomes;
}

/** Completed or failed for good; undefined while it may still run (a retry was scheduled meanwhile). */
async function outcomeOf(job: Job): Promise<JobOutcome | undefined> {
  const state = await job.getState();
  const attempts = job.attemptsStarted;
  if (state === 'failed') return { state: 'failed', error: parseFailureReason(job.failedReason), attempts };
  if (state !== 'completed') return undefined;
  const result = JobResultSchema.safeParse(job.returnvalue);
  if (result.success) return { state: 'done', result: result.data, attempts };
  return { state: 'failed', error: { code: 'QUEUE', message: 'the worker reported a result that is not one' }, attempts };
}
