/** What happened to each prompt of a batch: `results.jsonl` in the output folder, and the summary table. */
import { displayPath } from '../display-path.js';
import type { ErrorCode } from '../errors.js';
import { formatTable } from '../cli/format.js';

/**
 * done: written now; skipped: finished by an earlier run (--resume); invalid: the line could not be used;
 * failed: the generation failed; interrupted: stopped by Ctrl-C while running; pending: not reached after Ctrl-C.
 */
export const BATCH_STATUSES = ['done', 'skipped', 'invalid', 'failed', 'interrupted', 'pending'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

export interface BatchResult {
  /** The prompt file (absolute): one folder may hold the results of several prompt files. */
  readonly file: string;
  readonly line: number;
  readonly status: BatchStatus;
  readonly prompt?: string;
  /** Absolute paths, when the line got that far. */
  readonly output?: string;
  readonly sidecar?: string;
  readonly seed?: number;
  /** Per component, as in the sidecar; the first prompt's include loading the blocks. */
  readonly timingsMs?: Record<string, number>;
  readonly error?: { readonly code: ErrorCode; readonly message: string };
  /** Queued batches: how often the job was started (retries and workers that died count), and who finished it. */
  readonly attempts?: number;
  readonly worker?: string;
}

export function resultsJsonl(results: readonly BatchResult[]): string {
  return results.map((result) => `${JSON.stringify(result)}\n`).join('');
}

export type StatusCounts = Record<BatchStatus, number>;

export function countStatuses(results: readonly BatchResult[]): StatusCounts {
  const counts = Object.fromEntries(BATCH_STATUSES.map((status) => [status, 0])) as StatusCounts;
  for (const result of results) counts[result.status]++;
  return counts;
}

/** One row per line, then a line of counts; `paint` colours the status words (or leaves them). */
export function summaryTable(
  results: readonly BatchResult[],
  resultsFile: string,
  paint: (status: BatchStatus) => string,
): string {
  const rows = [
    ['line', 'status', 'seconds', 'output'],
    ...results.map((result) => [
      String(result.line),
      result.status,
      result.timingsMs?.total === undefined ? '-' : (result.timingsMs.total / 1000).toFixed(1),
      result.error?.message ?? (result.output === undefined ? '-' : displayPath(result.output)),
    ]),
  ];
  // Colour after alignment: escape codes would count as width.
  const table = formatTable(rows, [0, 2])
    .split('\n')
    .map((row, i) => (i === 0 ? row : row.replace(results[i - 1]!.status, paint(results[i - 1]!.status))))
    .join('\n');
  const counts = countStatuses(results);
  const tally = BATCH_STATUSES.filter((status) => counts[status] > 0)
    .map((status) => `${counts[status]} ${status}`)
    .join(', ');
  const seconds = results.reduce((sum, result) => sum + (result.status === 'done' ? (result.timingsMs?.total ?? 0) : 0), 0) / 1000;
  return `${table}\n\n${results.length} prompt${results.length === 1 ? '' : 's'}: ${tally}; ${seconds.toFixed(1)} s generating; ${displayPath(resultsFile)}`;
}
