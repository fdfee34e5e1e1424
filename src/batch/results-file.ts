/**
 * `results.jsonl` in a batch's output folder: one record per prompt line, for every prompt file and every shard
 * run into that folder. Each run updates it after planning (its lines pending, skipped or invalid) and after
 * every prompt, so a run killed on the spot still leaves a file that is true up to its last finished prompt.
 *
 * An update replaces this run's records and keeps every other record: other shards' lines and other prompt files'.
 * It is a read-modify-write under a claim of the file (claim.ts; other runs wait their turn, as SQLite writers
 * wait on its lock), written to a temporary and renamed into place, so readers see the old file or the new one.
 */
import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import { displayPath } from '../display-path.js';
import { ERROR_EXIT_CODES, errorMessage, SoraError, type ErrorCode } from '../errors.js';
import { claimPath } from '../video/claim.js';
import { writeClaimed } from '../video/output.js';
import { BATCH_STATUSES, resultsJsonl, type BatchResult } from './results.js';

/** Long enough for another run's update (a few ms) on a loaded machine; a dead holder's claim is removed at once. */
const UPDATE_WAIT_MS = 60_000;

const RecordSchema = z.looseObject({
  // Records without it come from a version that kept one prompt file per folder; they are not carried over.
  file: z.string().optional(),
  line: z.int().positive(),
  status: z.enum(BATCH_STATUSES),
  error: z
    .object({ code: z.enum(Object.keys(ERROR_EXIT_CODES) as [ErrorCode, ...ErrorCode[]]), message: z.string() })
    .optional(),
});

export class ResultsFile {
  constructor(
    readonly path: string,
    /** The prompt file of this run (absolute). */
    private readonly file: string,
    /** Every prompt line of that file: a record of another line is from an older version of the file. */
    private readonly promptLines: ReadonlySet<number>,
  ) {}

  /** Puts this run's records in place of any earlier ones for the same lines. */
  async update(results: readonly BatchResult[]): Promise<void> {
    const claim = await claimPath(this.path, { command: 'batch', waitMs: UPDATE_WAIT_MS });
    try {
      const mine = new Set(results.map((result) => result.line));
      const kept = (await this.read()).filter(
        (record) => record.file !== this.file || (this.promptLines.has(record.line) && !mine.has(record.line)),
      );
      const merged = [...kept, ...results].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
      await writeClaimed(claim, resultsJsonl(merged));
    } finally {
      claim.release();
    }
  }

  private async read(): Promise<BatchResult[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new SoraError('IO', `cannot read ${displayPath(this.path)}: ${errorMessage(error)}`, { cause: error });
    }
    const records: BatchResult[] = [];
    for (const [i, line] of text.split('\n').entries()) {
      if (line === '') continue;
      const record = parseRecord(line);
      if (record === undefined) {
        throw new SoraError(
          'IO',
          `${displayPath(this.path)}:${i + 1}: not a results record of this tool; move the file away so the batch can write its own`,
        );
      }
      if (record.file !== undefined) records.push(record as BatchResult);
    }
    return records;
  }
}

function parseRecord(line: string): z.infer<typeof RecordSchema> | undefined {
  try {
    const parsed = RecordSchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
