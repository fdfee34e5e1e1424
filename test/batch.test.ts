/**
 * `batch` through the built CLI on the shipped tiny model, with real ffmpeg and real files. Prompts are few, with
 * 2 steps at 128×128, to stay fast.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { assertBuilt, cli, expectOneLineError, ROOT, TEST_MODEL_ENV } from './helpers/cli.js';
import { readResults } from './helpers/case-folders.js';
import { tempDir } from './helpers/model-folder.js';

const FAST = ['--steps', '2', '--resolution', '128x128', '--seed', '5'];
const { USAGE, INPUT, IO, INTERRUPTED } = ERROR_EXIT_CODES;

let root: string;
let counter = 0;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-batch-');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh case folder holding the prompt file; returns the file and the output folder. */
async function batchCase(name: string, text: string): Promise<{ file: string; out: string }> {
  const dir = join(root, `case-${counter++}`);
  await mkdir(dir);
  const file = join(dir, name);
  await writeFile(file, text);
  return { file, out: join(dir, 'out') };
}


async function sidecar(path: string): Promise<Record<string, any>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, any>;
}

describe('batch', () => {
  it('.txt: one video and sidecar per prompt, every block loaded once for the whole batch, results.jsonl', async () => {
    const { file, out } = await batchCase('prompts.txt', '# two prompts\na red ball bouncing\n\na blue cube\n');
    const result = await cli(['batch', file, '-o', out, ...FAST, '--trace']);
    expect(result.code, result.stderr).toBe(0);
    expect((await readdir(out)).sort()).toEqual([
      '0002-a-red-ball-bouncing.json',
      '0002-a-red-ball-bouncing.mp4',
      '0004-a-blue-cube.json',
      '0004-a-blue-cube.mp4',
      'results.jsonl',
      'trace.json',
    ]);
    const rows = await readResults(out);
    expect(rows.map((row) => [row.line, row.status, row.seed])).toEqual([
      [2, 'done', 5],
      [4, 'done', 5],
    ]);
    expect(rows[1]!.output).toBe(join(out, '0004-a-blue-cube.mp4'));
    expect(rows[1]!.timingsMs?.total).toBeGreaterThan(0);
    const second = await sidecar(join(out, '0004-a-blue-cube.json'));
    expect(second.prompt).toBe('a blue cube');
    expect(second.batch).toEqual({ file, line: 4 });
    expect(second.settings.resolution).toBe('128x128');

    // The model stays loaded: each of the 32 blocks is loaded once, though both prompts ran every block.
    const trace = JSON.parse(await readFile(join(out, 'trace.json'), 'utf8')) as { traceEvents: { name: string; cat?: string }[] };
    const count = (cat: string): Map<string, number> => {
      const counts = new Map<string, number>();
      for (const event of trace.traceEvents.filter((e) => e.cat === cat)) counts.set(event.name, (counts.get(event.name) ?? 0) + 1);
      return counts;
    };
    expect(count('load').size).toBe(28); // TDTM blocks are not used without --tdtm
    expect([...count('load').values()].every((loads) => loads === 1)).toBe(true);
    expect(count('run').get('t5block-layer0')).toBe(2);
    expect(result.stdout).toMatch(/2 prompts: 2 done/);
  });

  it('.jsonl: per-line overrides; malformed lines reported with file:line while the batch goes on (exit 3)', async () => {
    const { file, out } = await batchCase(
      'prompts.jsonl',
      [
        '{"prompt": "a red ball", "seed": 3, "steps": 1, "output": "ball.mp4"}',
        '{"prompt": "a cat", "sead": 3}',
        '{not json',
        '{"prompt": "a dog", "resolution": "192x192", "output": "dog"}',
      ].join('\n'),
    );
    const result = await cli(['batch', file, '-o', out, ...FAST]);
    expect(result.code, result.stderr).toBe(INPUT);
    expect(result.stderr).toContain(`error: ${file}:2: unknown field "sead"`);
    expect(result.stderr).toContain(`error: ${file}:3: not valid JSON`);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toMatch(/^error: 2 of 4 prompts not done \(first: .*:2: unknown field/);
    expect((await readResults(out)).map((row) => [row.line, row.status])).toEqual([
      [1, 'done'],
      [2, 'invalid'],
      [3, 'invalid'],
      [4, 'done'],
    ]);
    const ball = await sidecar(join(out, 'ball.json'));
    expect([ball.seed, ball.settings.steps, ball.settings.resolution]).toEqual([3, 1, '128x128']);
    const dog = await sidecar(join(out, 'dog.json'));
    expect([dog.seed, dog.settings.steps, dog.settings.resolution]).toEqual([5, 2, '192x192']);
    expect(existsSync(join(out, 'dog.mp4'))).toBe(true);
  });

  it('.csv: quoted commas, per-line seed and output; a prompt that fails is reported and the batch goes on', async () => {
    const { file, out } = await batchCase('prompts.csv', 'prompt,seed,output\n"a red ball, bouncing",9,clash.mp4\na cat,,\n');
    // A folder where the first output goes: that prompt fails when its output is prepared (IO).
    await mkdir(join(out, 'clash.mp4'), { recursive: true });
    const result = await cli(['batch', file, '-o', out, ...FAST, '--overwrite']);
    expect(result.code, result.stderr).toBe(IO);
    expect(result.stderr).toMatch(/error: line 2: .*clash\.mp4 is a folder; cannot replace it with a video file \(the batch goes on\)/);
    const rows = await readResults(out);
    expect(rows.map((row) => [row.line, row.status, row.error?.code])).toEqual([
      [2, 'failed', 'IO'],
      [3, 'done', undefined],
    ]);
    expect((await sidecar(join(out, '0003-a-cat.json'))).prompt).toBe('a cat');
    expect(result.stdout).toMatch(/2 prompts: 1 done, 1 failed/);
  });

  it('--resume after an interrupted batch redoes only the prompts that did not finish', async () => {
    const { file, out } = await batchCase('prompts.txt', 'one\ntwo\nthree\nfour\n');
    const args = ['batch', file, '-o', out, ...FAST];
    // Ctrl-C once the first video is in place: the prompt running then is stopped, the rest not started.
    const interrupted = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'bin', 'ondevice-sora'), ...args], { cwd: ROOT, env: { ...process.env, ...TEST_MODEL_ENV } });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const poll = setInterval(() => {
        if (existsSync(join(out, '0001-one.json'))) {
          clearInterval(poll);
          child.kill('SIGINT');
        }
      }, 20);
      child.once('error', reject);
      child.once('close', (code) => {
        clearInterval(poll);
        resolve({ code, stdout });
      });
    });
    expect(interrupted.code).toBe(INTERRUPTED);
    const before = await readResults(out);
    const finished = before.filter((row) => row.status === 'done').map((row) => row.line);
    expect(finished[0]).toBe(1);
    expect(finished.length).toBeLessThan(4);
    expect(before.filter((row) => row.status !== 'done').every((row) => ['interrupted', 'pending'].includes(row.status))).toBe(true);
    expect((await readdir(out)).filter((name) => name.endsWith('.part'))).toEqual([]);
    const mtimes = await Promise.all(finished.map(async (line) => (await stat(before[line - 1]!.output!)).mtimeMs));

    // Without --resume the finished outputs are in the way; with it they are skipped and left untouched.
    expectOneLineError(await cli(args), IO, 'already exists', 'pass --resume');
    const resumed = await cli([...args, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const after = await readResults(out);
    expect(after.map((row) => row.status)).toEqual([1, 2, 3, 4].map((line) => (finished.includes(line) ? 'skipped' : 'done')));
    for (const [i, line] of finished.entries()) expect((await stat(after[line - 1]!.output!)).mtimeMs).toBe(mtimes[i]);
    for (const row of after) expect(existsSync(row.output!)).toBe(true);
  });

  it('--shard i/n takes every n-th prompt line; a malformed --shard is a usage error naming the flag', async () => {
    const { file, out } = await batchCase('prompts.txt', 'first\n# not a prompt line\nsecond\nthird\n');
    const result = await cli(['batch', file, '-o', out, ...FAST, '--shard', '2/2']);
    expect(result.code, result.stderr).toBe(0);
    expect((await readResults(out)).map((row) => [row.line, row.status])).toEqual([[3, 'done']]);

    for (const shard of ['0/2', '3/2', 'x', '1-2']) {
      expectOneLineError(await cli(['batch', file, '-o', out, '--shard', shard]), USAGE, `--shard: must be I/N with 1 ≤ I ≤ N, e.g. 2/4, got "${shard}"`);
    }
  });
});
