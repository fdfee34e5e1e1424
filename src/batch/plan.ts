/** Where each prompt of a batch goes, and which of them a previous run already finished. */
import { access, readFile } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import { z } from 'zod';
import { sidecarPathFor } from '../video/sidecar.js';
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

export function planOutputs(entries: readonly BatchEntry[], folder: string, format: VideoFormat, file: string): Plan {
  const jobs: PlannedJob[] = [];
  const problems: LineProblem[] = [];
  const owners = new Map<string, number>();
  for (const entry of entries) {
    const { format: jobFormat, path } = outputOf(entry, folder, format);
    const sidecarPath = resolve(sidecarPathFor(path));
    const clash = owners.get(path) ?? owners.get(sidecarPath);
    if (clash !== undefined) {
      const message = `${file}:${entry.line}: output: ${basename(path)} is also written by line ${clash}`;
      problems.push({ index: entry.index, line: entry.line, message });
      continue;
    }
    owners.set(path, entry.line).set(sidecarPath, entry.line);
    jobs.push({ entry, format: jobFormat, path, sidecarPath });
  }
  return { jobs, problems };
}

/** The fields of a sidecar that tell whether it belongs to this prompt. */
const FinishedSidecar = z.object({ prompt: z.string(), output: z.object({ path: z.string() }) });

/**
 * A job is finished when its sidecar (renamed into place only after the video) names the same prompt and output,
 * and the output is there. Interrupted runs leave only hidden `.part` files, never a sidecar.
 */
export async function isFinished(job: PlannedJob): Promise<boolean> {
  try {
    const sidecar = FinishedSidecar.safeParse(JSON.parse(await readFile(job.sidecarPath, 'utf8')));
    if (!sidecar.success || sidecar.data.prompt !== job.entry.prompt || resolve(sidecar.data.output.path) !== job.path) {
      return false;
    }
    await access(job.path);
    return true;
  } catch {
    return false;
  }
}

/** Whether the output or its sidecar is there (finished or not). */
export async function anyExists(job: PlannedJob): Promise<boolean> {
  const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);
  return (await exists(job.path)) || (await exists(job.sidecarPath));
}
