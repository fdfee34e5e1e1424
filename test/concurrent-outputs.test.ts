/**
 * Runs that cannot clobber each other (src/video/claim.ts, src/batch/results-file.ts): real CLI processes started
 * at the same time against one output or one batch folder. A fake ffmpeg that waits for the test's go-ahead before
 * encoding keeps the first run's claim held until the second has met it.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { cli, expectOneLineError, startCli } from './helpers/cli.js';
import { writeFakeFfmpeg } from './helpers/fake-ffmpeg.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { waitFor } from './helpers/processes.js';
import { leftovers, readResults, useCaseFolders } from './helpers/case-folders.js';

const FAST = ['--steps', '1', '--resolution', '128x128', '--seed', '1'];
const { IO } = ERROR_EXIT_CODES;

const { caseDir } = useCaseFolders('sora-concurrent-');

describe('an output is claimed before any work', () => {
  it('two generate -o same.mp4 at once: the second fails at once naming the first, whose video is whole', async () => {
    const dir = await caseDir();
    const gated = await writeFakeFfmpeg(dir, 'gated');
    const video = join(dir, 'same.mp4');
    const first = startCli(['generate', 'a red ball', '-o', video, ...FAST, '--ffmpeg', gated]);
    await waitFor('the first run to reach ffmpeg', () => existsSync(join(dir, 'ffmpeg.pid')));
    const second = await cli(['generate', 'a blue cube', '-o', video, ...FAST]);
    expectOneLineError(second, IO, `${video} is claimed by another run: generate, pid ${first.child.pid} on `);
    expect(first.child.exitCode, 'the second run failed while the first was still working').toBeNull();
    await writeFile(join(dir, 'ffmpeg.go'), '');
    const won = await first.done;
    expect(won.code, won.stderr).toBe(0);
    expect(JSON.parse(await readFile(join(dir, 'same.json'), 'utf8')).prompt).toBe('a red ball');
    const left = await leftovers(dir);
    recordFaults({ concurrentRuns: 2, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });

  it('two identical batches into one folder: the second fails at once; the first writes every video', async () => {
    const dir = await caseDir();
    const gated = await writeFakeFfmpeg(dir, 'gated');
    const file = join(dir, 'prompts.txt');
    await writeFile(file, 'a red ball\na blue cube\n');
    const out = join(dir, 'out');
    const first = startCli(['batch', file, '-o', out, ...FAST, '--ffmpeg', gated]);
    await waitFor('the first batch to reach ffmpeg', () => existsSync(join(dir, 'ffmpeg.pid')));
    const second = await cli(['batch', file, '-o', out, ...FAST]);
    expectOneLineError(second, IO, 'is claimed by another run: batch, pid', String(first.child.pid));
    expect(first.child.exitCode).toBeNull();
    await writeFile(join(dir, 'ffmpeg.go'), '');
    const won = await first.done;
    expect(won.code, won.stderr).toBe(0);
    expect((await readResults(out)).map((row) => [row.line, row.status])).toEqual([
      [1, 'done'],
      [2, 'done'],
    ]);
    const left = await leftovers(out);
    recordFaults({ concurrentRuns: 2, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });
});

describe('shards into one folder give one results.jsonl with every line', () => {
  const PROMPTS = 'one\ntwo\nthree\nfour\n';

  it('--shard 1/2 and 2/2 at the same time', async () => {
    const dir = await caseDir();
    const file = join(dir, 'prompts.txt');
    await writeFile(file, PROMPTS);
    const out = join(dir, 'out');
    const shards = ['1/2', '2/2'].map((shard) => startCli(['batch', file, '-o', out, ...FAST, '--shard', shard]));
    for (const shard of shards) {
      const result = await shard.done;
      expect(result.code, result.stderr).toBe(0);
    }
    const rows = await readResults(out);
    expect(rows.map((row) => [row.line, row.status])).toEqual([1, 2, 3, 4].map((line) => [line, 'done']));
    expect(rows.every((row) => row.file === file && existsSync(row.output!) && existsSync(row.sidecar!))).toBe(true);
    const left = await leftovers(out);
    recordFaults({ concurrentRuns: 2, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });

  it('one shard after the other, then a rerun of one shard with --resume', async () => {
    const dir = await caseDir();
    const file = join(dir, 'prompts.txt');
    await writeFile(file, PROMPTS);
    const out = join(dir, 'out');
    for (const shard of ['2/2', '1/2']) {
      const result = await cli(['batch', file, '-o', out, ...FAST, '--shard', shard]);
      expect(result.code, result.stderr).toBe(0);
    }
    expect((await readResults(out)).map((row) => [row.line, row.status])).toEqual([1, 2, 3, 4].map((line) => [line, 'done']));
    const rerun = await cli(['batch', file, '-o', out, ...FAST, '--shard', '2/2', '--resume']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/2 prompts: 2 skipped/);
    expect((await readResults(out)).map((row) => row.status)).toEqual(['done', 'skipped', 'done', 'skipped']);
  });
});
