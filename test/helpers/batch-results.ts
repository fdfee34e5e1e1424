/** Reads the results.jsonl a batch (local or queued) wrote into its output folder. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BatchResult } from '../../src/batch/results.js';

export async function results(out: string): Promise<BatchResult[]> {
  const text = await readFile(join(out, 'results.jsonl'), 'utf8');
  return text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as BatchResult);
}
