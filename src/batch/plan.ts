/** Where each prompt of a batch goes, and which of them a previous run already finished. */
import { access } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import { outputBytes } from '../video/output.js';
import { readOwnSidecar, sidecarPathFor } from '../video/sidecar.js';
import type { VideoFormat } from '../video/video-writer.js';
import type { BatchEntry, LineProblem } from './prompt-file.js';

export interface PlannedJob {
  readonly entry: BatchEntry;
  readonly format: VideoFormat;
  /** Absolute paths. */
  readonly path: string;
  readonly sidecarPath: string;
}

export interface Plan {
  readonly jobs: readonly PlannedJob[];
  /** Lines whose output collides with an earlier line's. */
  readonly problems: readonly LineProblem[];
}

const SLUG_LENGTH = 48;

/**
 * `0007-a-red-ball-bouncing.mp4` for line 7 unless the line names its output: the line number keeps names unique
 * and stable across shards and reruns, the words make the folder readable.
 */
export function defaultOutputName(entry: BatchEntry): string {
  const slug = entry.prompt
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, SLUG_LENGTH)
    .replace(/^-+|-+$/g, '');
  return `${String(entry.line).padStart(4, '0')}-${slug || 'prompt'}`;
}

function outputOf(entry: BatchEntry, folder: string, batchFormat: VideoFormat): Pick<PlannedJob, 'format' | 'path'> {
  const name = entry.output ?? defaultOutputName(entry);
  const extension = extname(name).slice(1).toLowerCase();
  if (extension !== '') return { format: extension as VideoFormat, path: resolve(folder, name) };
  const file = batchFormat === 'frames' ? name : `${name}.${batchFormat}`;
  return { format: batchFormat, path: resolve(folder, file) };
}

/**
 * The names of the batch's own files in its folder: its results, and its trace (`trace.json`, or
 * `trace-I-of-N.json` for a shard, so that shards writing into one folder never share one).
 */
export const RESULTS_FILE = 'results.jsonl';
const BATCH_FILE = /^(?:results\.jsonl|trace(?:-\d+-of-\d+)?\.json)$/;

export function traceFileName(shard: { readonly index: number; readonly count: number } | undefined): string {
  return shard === undefined ? 'trace.json' : `trace-${shard.index}-of-${shard.count}.json`;
}

export function planOutputs(entries: readonly BatchEntry[], folder: string, format: VideoFormat, file: string): Plan {
  const jobs: PlannedJob[] = [];
  const problems: LineProblem[] = [];
  const owners = new Map<string, number>();
  for (const entry of entries) {
    const { format: jobFormat, path } = outputOf(entry, folder, format);
    const sidecarPath = resolve(sidecarPathFor(path));
    const clash = owners.get(path) ?? owners.get(sidecarPath);
    const taken = [path, sidecarPath].map((name) => basename(name)).find((name) => BATCH_FILE.test(name));
    if (clash !== undefined || taken !== undefined) {
      const message =
        taken !== undefined
          ? `${file}:${entry.line}: output: ${basename(path)} would write ${taken}, a name the batch keeps for its own file`
          : `${file}:${entry.line}: output: ${basename(path)} is also written by line ${clash}`;
      problems.push({ index: entry.index, line: entry.line, message });
      continue;
    }
    owners.set(path, entry.line).set(sidecarPath, entry.line);
    jobs.push({ entry, format: jobFormat, path, sidecarPath });
  }
  return { jobs, problems };
}

/**
 * What an earlier run left for a job, for --resume; the files decide, not an earlier results.jsonl.
 * - `finished`: its sidecar (renamed into place only after the video) is one this tool wrote for the same prompt
 *   and output, and the output on disk is what the sidecar recorded (its size);
 * - `damaged`: such a sidecar, but the output is missing or not what it recorded: this tool's own output of this
 *   very job, to be made again;
 * - `other`: anything else (nothing there, or files no sidecar of this job vouches for).
 * Interrupted runs leave only hidden `.part` files, never a sidecar.
 */
export async function earlierRun(job: PlannedJob): Promise<'finished' | 'damaged' | 'other'> {
  const sidecar = await readOwnSidecar(job.sidecarPath);
  if (sidecar === undefined || sidecar.prompt !== job.entry.prompt || resolve(sidecar.output.path) !== job.path) return 'other';
  const bytes = await outputBytes(job.path).catch(() => 0);
  const intact = bytes > 0 && (sidecar.output.bytes === undefined || sidecar.output.bytes === bytes);
  return intact ? 'finished' : 'damaged';
}

/** Whether the output or its sidecar is there (finished or not). */
export async function anyExists(job: PlannedJob): Promise<boolean> {
  const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);
  return (await exists(job.path)) || (await exists(job.sidecarPath));
}
