/**
 * One temp folder per test file, removed after it, with a fresh numbered folder per case; and what the CLI leaves in
 * a folder that it should not (claims and temporaries, src/video/claim.ts).
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { BatchResult } from '../../src/batch/results.js';
import { assertBuilt } from './cli.js';
import { tempDir } from './model-folder.js';

/** Registers the file's hooks (the CLI is built, the temp root made and removed); call at the top of a test file. */
export function useCaseFolders(prefix: string): { caseDir(): Promise<string> } {
  let root = '';
  let counter = 0;
  beforeAll(async () => {
    assertBuilt();
    root = await tempDir(prefix);
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  return {
    async caseDir() {
      const dir = join(root, `case-${counter++}`);
      await mkdir(dir);
      return dir;
    },
  };
}

/** A claim's lock or temporary by its suffix. */
export const CLAIM_OR_TEMPORARY = /\.(part|lock|tmp|stale)$/;

/** Claims and temporaries left directly in `dir`. */
export async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => CLAIM_OR_TEMPORARY.test(name));
}

/** The records of `<out>/results.jsonl`. */
export async function readResults(out: string): Promise<BatchResult[]> {
  return (await readFile(join(out, 'results.jsonl'), 'utf8'))
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as BatchResult);
}
