/**
 * The queue of a distributed batch, on BullMQ: a maintained Redis queue whose jobs carry locks that workers renew,
 * so a worker that dies loses its job to another after a bounded time (stalled-job check), with attempts, backoff
 * and a kept record of every finished job. Redis is the one service a farm of Macs can share without more
 * infrastructure; the other Node queues on it (bee-queue, Bull 3) are unmaintained or lack stall recovery.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { JobsOptions, Processor, Queue, Worker } from 'bullmq';
import * as z from 'zod';
import { canonicalJson } from '../canonical-json.js';
import { ERROR_EXIT_CODES, type ErrorCode } from '../errors.js';
import type { Logger } from '../logging.js';
import { connectionOptions, KEY_PREFIX, type QueueAddress } from './connection.js';

export const JOB_NAME = 'generate';
/** A job failing for a reason of its own runs at most this often (then it is failed for good). */
export const MAX_ATTEMPTS = 3;
const BACKOFF_MS = 5000;
/** A job whose worker died this many times more is failed ("crashed its worker"), not handed out forever. */
const MAX_STALLS = 2;
export { DEFAULT_STALL_SECONDS } from './stall-timeout.js';

export const JOB_OPTIONS: JobsOptions = {
  attempts: MAX_ATTEMPTS,
  backoff: { type: 'exponential', delay: BACKOFF_MS },
  // Kept: a finished job's id is what makes enqueuing the same file again add nothing, and what a follower reads.
  removeOnComplete: false,
  removeOnFail: false,
};

/** A deterministic id: the same request always maps to the same job, so adding it twice adds it once. */
export function jobIdFor(line: number, request: unknown): string {
  const digest = createHash('sha256').update(canonicalJson(request)).digest('hex');
  // BullMQ refuses ids that are integers or hold ':'.
  return `line${line}-${digest.slice(0, 32)}`;
}

/** Who ran a job: host and pid, so a result can be traced to a machine. */
export const WORKER_ID = `${hostname()}/${process.pid}`;

/** What a worker hands back for a finished job (read by followers: checked, as everything from the queue). */
export const JobResultSchema = z.object({
  seed: z.int().min(0),
  timingsMs: z.record(z.string(), z.number()),
  worker: z.string().max(300),
  /** The output was already there from an earlier attempt whose worker died before reporting it. */
  reused: z.boolean(),
});
export type JobResult = z.infer<typeof JobResultSchema>;

/** A job's failure travels as BullMQ's failedReason string: `[CODE] message`. */
export function failureReason(code: ErrorCode, message: string): string {
  return `[${code}] ${message}`;
}

export function parseFailureReason(reason: string | undefined): { code: ErrorCode; message: string } {
  const match = /^\[([A-Z]+)\] ([\s\S]*)$/.exec(reason ?? '');
  const code = match?.[1];
  if (match !== null && code !== undefined && code in ERROR_EXIT_CODES) return { code: code as ErrorCode, message: match[2]! };
  return { code: 'INTERNAL', message: reason || 'failed without a reason' };
}

/** BullMQ (and ioredis) are loaded on first use, not at start-up: ~28 MiB that only queue commands need. */
export async function openQueue(address: QueueAddress, logger: Logger): Promise<Queue> {
  const { Queue } = await import('bullmq');
  const queue = new Queue(address.name, { connection: connectionOptions(address), prefix: KEY_PREFIX });
  queue.on('error', (error) => logger.warn({ error: error.message }, `queue ${address.display}: connection problem (retrying)`));
  return queue;
}

export interface WorkerSettings {
  readonly concurrency: number;
  /** A job whose lock is not renewed for this long is handed to another worker within 1.5× of it. */
  readonly stallSeconds: number;
}

export async function startWorker(address: QueueAddress, processor: Processor, settings: WorkerSettings, logger: Logger): Promise<Worker> {
  const { Worker } = await import('bullmq');
  const lockMs = settings.stallSeconds * 1000;
  const worker = new Worker(address.name, processor, {
    connection: connectionOptions(address),
    prefix: KEY_PREFIX,
    concurrency: settings.concurrency,
    lockDuration: lockMs,
    stalledInterval: lockMs / 2,
    maxStalledCount: MAX_STALLS,
  });
  worker.on('error', (error) => logger.warn({ error: error.message }, `worker ${address.display}: connection problem (retrying)`));
  return worker;
}

/** Job counts of the whole queue (every batch in it), by BullMQ state. */
export async function queueCounts(queue: Queue): Promise<Record<string, number>> {
  return queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
}
