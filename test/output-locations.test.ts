/**
 * Where outputs go, checked before any model work, with messages that say what is really wrong: virtual and
 * read-only file systems (a real read-only mount, test/helpers/read-only.ts), names that clash with the batch's own
 * files, a format the name contradicts, an empty shard, a prompt file that is not text.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { cli, expectOneLineError } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { cliWithReadOnly, readOnlyMountProblem } from './helpers/read-only.js';
import { readResults, useCaseFolders } from './helpers/case-folders.js';

const FAST = ['--steps', '1', '--resolution', '128x128', '--seed', '1', '--quiet'];
const { USAGE, INPUT, IO } = ERROR_EXIT_CODES;

let readOnlyProblem: string | null;

beforeAll(async () => {
  readOnlyProblem = await readOnlyMountProblem();
});

const { caseDir } = useCaseFolders('sora-locations-');

describe('output locations that cannot take files', () => {
  it('-o /proc/x.mp4: says /proc is a virtual file system, not that it does not exist', async (context) => {
    if (!existsSync('/proc/self')) context.skip('no /proc here');
    expectOneLineError(await cli(['generate', 'a red ball', '-o', '/proc/x.mp4', ...FAST]), IO, 'output folder /proc is on the proc virtual file system');
    recordFaults({ badInputs: 1 });
  });

  it('batch into a read-only mount: the real reason, before any model work', async (context) => {
    if (readOnlyProblem !== null) context.skip(readOnlyProblem);
    const dir = await caseDir();
    const file = join(dir, 'prompts.txt');
    await writeFile(file, 'one\ntwo\n');
    const mount = join(dir, 'ro');
    await mkdir(mount);
    expectOneLineError(
      await cliWithReadOnly(mount, ['batch', file, '-o', join(mount, 'new', 'out'), ...FAST]),
      IO,
      `cannot make output folder ${join(mount, 'new', 'out')}: ${mount} is on a read-only file system`,
    );
    expectOneLineError(await cliWithReadOnly(mount, ['batch', file, '-o', mount, ...FAST]), IO, `output folder ${mount} is on a read-only file system`);
    recordFaults({ faultsInjected: 2 });
  });

  it('generate --preview into a read-only folder: refused before the video is made', async (context) => {
    if (readOnlyProblem !== null) context.skip(readOnlyProblem);
    const dir = await caseDir();
    const mount = join(dir, 'ro');
    await mkdir(mount);
    const result = await cliWithReadOnly(mount, ['generate', 'a red ball', '-o', join(dir, 'x.mp4'), '--preview', join(mount, 'sheet.png'), ...FAST]);
    expectOneLineError(result, IO, `output folder ${mount} is on a read-only file system`);
    const left = (await readdir(dir)).filter((name) => name !== 'ro');
    recordFaults({ faultsInjected: 1, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });
});

describe('names and formats', () => {
  it('--format frames -o x.mp4 is refused instead of making a folder named x.mp4', async () => {
    const dir = await caseDir();
    for (const [format, output] of [
      ['frames', 'x.mp4'],
      ['gif', 'x.webm'],
    ] as const) {
      const result = await cli(['generate', 'a red ball', '-o', join(dir, output), '--format', format, ...FAST]);
      expectOneLineError(result, USAGE, `--format ${format} writes`, `names a .${output.split('.')[1]} file`);
    }
    expect(await readdir(dir)).toEqual([]);
    recordFaults({ badInputs: 2 });
  });

  it('batch: a line whose sidecar would be the batch trace is refused; the trace and a later --resume work', async () => {
    const dir = await caseDir();
    const file = join(dir, 'prompts.jsonl');
    await writeFile(file, '{"prompt": "a red ball", "output": "trace.mp4"}\n{"prompt": "a blue cube"}\n');
    const out = join(dir, 'out');
    const first = await cli(['batch', file, '-o', out, ...FAST, '--trace']);
    expect(first.code, first.stderr).toBe(INPUT);
    expect(first.stderr).toContain('output: trace.mp4 would write trace.json, a name the batch keeps for its own file');
    const trace = JSON.parse(await readFile(join(out, 'trace.json'), 'utf8')) as { traceEvents: unknown[] };
    expect(trace.traceEvents.length).toBeGreaterThan(0);
    const resumed = await cli(['batch', file, '-o', out, ...FAST, '--trace', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(INPUT);
    expect((await readResults(out)).map((row) => [row.line, row.status])).toEqual([
      [1, 'invalid'],
      [2, 'skipped'],
    ]);
    recordFaults({ badInputs: 2 });
  });
});

describe('batch input', () => {
  it('--shard 8/8 of 6 prompt lines: says the shard is empty, makes nothing; a one-prompt shard counts one', async () => {
    const dir = await caseDir();
    const file = join(dir, 'prompts.txt');
    await writeFile(file, 'a\nb\nc\nd\ne\nf\n');
    const out = join(dir, 'out');
    const empty = await cli(['batch', file, '-o', out, ...FAST, '--shard', '8/8']);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout.trim()).toBe("0 prompts: shard 8/8 takes none of the file's 6 prompt lines; nothing to do");
    expect(existsSync(out)).toBe(false);
    const one = await cli(['batch', file, '-o', out, ...FAST, '--shard', '6/8']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/\n1 prompt: 1 done;/);
    recordFaults({ badInputs: 1 });
  });

  it('a binary file named .txt is refused as not text, before anything is made', async () => {
    const dir = await caseDir();
    const bytes = Buffer.alloc(4096);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 256;
    const cases = [
      ['nul.txt', bytes, 'not a text file (byte 0 is NUL)'],
      ['latin1.txt', Buffer.from('caf\xe9 au lait\n', 'latin1'), 'not a text file (it is not valid UTF-8)'],
    ] as const;
    for (const [name, content, message] of cases) {
      await writeFile(join(dir, name), content);
      expectOneLineError(await cli(['batch', join(dir, name), '-o', join(dir, 'out'), ...FAST]), INPUT, `${name}: ${message}`);
    }
    expect(existsSync(join(dir, 'out'))).toBe(false);
    recordFaults({ badInputs: cases.length });
  });
});
