/**
 * What a queued job carries: data only. The prompt line as a prompt file's JSON line (checked by the same schema),
 * the batch's generation flags as the CLI received them (checked by the same flag schemas), the model's
 * fingerprint and the output folder's id. Nothing a worker runs or opens comes from the queue: the model, backend,
 * ffmpeg and output folder are the worker's own, and the output is a plain file name inside that folder.
 */
import * as z from 'zod';
import { parsePromptLine, promptLineObject, type BatchEntry } from '../batch/prompt-file.js';
import type { Model } from '../model/manifest.js';
import { jobIdFor } from '../queue/jobs.js';
import { FORMAT_FLAG, JOB_FLAGS } from './actions/generate.js';
import { POLICY_FLAGS } from './policy-flags.js';

const JOB_DATA_VERSION = 1;

/** The flags that decide what a video looks like; the rest (model, backend, memory, ffmpeg) are each worker's. */
const QueuedFlagsSchema = z.strictObject({
  steps: JOB_FLAGS.steps,
  cfgScale: JOB_FLAGS.cfgScale,
  numFrames: JOB_FLAGS.numFrames,
  resolution: JOB_FLAGS.resolution,
  fps: JOB_FLAGS.fps,
  aes: JOB_FLAGS.aes,
  timestepTransform: JOB_FLAGS.timestepTransform,
  overwrite: JOB_FLAGS.overwrite,
  format: FORMAT_FLAG,
  ...POLICY_FLAGS,
});
export type QueuedFlags = z.infer<typeof QueuedFlagsSchema>;
const QUEUED_FLAG_KEYS = Object.keys(QueuedFlagsSchema.shape);

const JobDataSchema = z.strictObject({
  version: z.literal(JOB_DATA_VERSION),
  line: z.record(z.string(), z.unknown()),
  flags: z.record(z.string(), z.unknown()),
  model: z.strictObject({ name: z.string().max(200), fingerprint: z.string().regex(/^[0-9a-f]{64}$/) }),
  folder: z.string().regex(/^[0-9a-f]{32}$/),
  /** Where the line came from, for the sidecar and messages; never opened. */
  source: z.strictObject({ file: z.string().min(1).max(4096), line: z.int().min(1) }),
});
type JobData = z.infer<typeof JobDataSchema>;

/** A job as a worker runs it, every field checked. */
export interface QueuedJob {
  readonly entry: BatchEntry & { readonly seed: number; readonly output: string };
  readonly flags: QueuedFlags;
  readonly model: JobData['model'];
  readonly folder: string;
  readonly source: JobData['source'];
}

export interface EnqueueRequest {
  readonly entry: BatchEntry;
  /** The output's file (or frames folder) name inside the output folder. */
  readonly output: string;
  readonly seed: number;
  /** The batch's options as commander gave them (strings and booleans, before parsing). */
  readonly options: Record<string, unknown>;
  readonly model: Model;
  readonly fingerprint: string;
  readonly folder: string;
  /** The prompt file's absolute path. */
  readonly file: string;
}

/**
 * The job's id and data. The id covers everything that shapes the output (file, line, prompt line, flags, model,
 * folder) but a seed drawn at random now, so enqueuing the same file again maps every line to its existing job.
 */
export function jobFor(request: EnqueueRequest): { id: string; data: JobData } {
  const { entry, output, seed, options, model, fingerprint, folder, file } = request;
  const flags = Object.fromEntries(QUEUED_FLAG_KEYS.filter((key) => options[key] !== undefined).map((key) => [key, options[key]]));
  const line = promptLineObject({ ...entry, output });
  const id = jobIdFor(entry.line, { file, line, flags, seed: options.seed, fingerprint, folder });
  const data: JobData = {
    version: JOB_DATA_VERSION,
    line: { ...line, seed },
    flags,
    model: { name: model.name, fingerprint },
    folder,
    source: { file, line: entry.line },
  };
  return { id, data };
}

/** The job checked field by field, or the first problem as `field: what is wrong`. */
export function parseJob(data: unknown): QueuedJob | string {
  const job = JobDataSchema.safeParse(data);
  if (!job.success) return problemOf([], job.error);
  const line = parsePromptLine(job.data.line);
  if (typeof line === 'string') return `line.${line}`;
  if (line.seed === undefined) return 'line.seed: is missing';
  if (line.output === undefined) return 'line.output: is missing';
  const flags = QueuedFlagsSchema.safeParse(job.data.flags);
  if (!flags.success) return problemOf(['flags'], flags.error);
  const { model, folder, source } = job.data;
  const entry = { ...line, seed: line.seed, output: line.output, index: 0, line: source.line };
  return { entry, flags: flags.data, model, folder, source };
}

function problemOf(prefix: readonly string[], error: z.ZodError): string {
  const issue = error.issues[0]!;
  const field = [...prefix, ...issue.path.map(String)].join('.');
  return field === '' ? issue.message : `${field}: ${issue.message}`;
}
