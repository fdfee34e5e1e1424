/**
 * `--overwrite` replaces only what this tool wrote (src/video/replaceable.ts): the built CLI on the tiny model, with
 * real folders holding the user's files, which every test checks byte for byte afterwards.
 */
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { checkReplaceable, framesOutput } from '../src/video/replaceable.js';
import { cli, expectOneLineError, ROOT } from './helpers/cli.js';
import { expectSoraError } from './helpers/expect-error.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { syntheticModelProblem } from './helpers/synthetic-model.js';
import { leftovers, useCaseFolders } from './helpers/case-folders.js';

const FAST = ['--steps', '1', '--resolution', '128x128', '--seed', '1'];
const { IO } = ERROR_EXIT_CODES;
const NOT_OURS = '--overwrite replaces only what this tool wrote';

/** Every file under `dir` (relative path → content). */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path), await readFile(path, 'utf8'));
  }
  return files;
}

/** How many of the files in `before` are gone or changed now. */
async function lost(dir: string, before: Map<string, string>): Promise<number> {
  const after = await snapshot(dir);
  return [...before].filter(([path, content]) => after.get(path) !== content).length;
}

const { caseDir } = useCaseFolders('sora-overwrite-');

describe('--overwrite never replaces what the tool did not write', () => {
  it('generate: a folder holding other files is refused, naming one, and stays as it was', async () => {
    const dir = await caseDir();
    const folder = join(dir, 'frames');
    await mkdir(join(folder, 'sub'), { recursive: true });
    await writeFile(join(folder, 'frame_00000.png'), 'my own frame');
    await writeFile(join(folder, 'notes.txt'), 'my notes');
    await writeFile(join(folder, 'sub', 'deep.txt'), 'deep');
    const before = await snapshot(dir);
    const result = await cli(['generate', 'a red ball', '-o', folder, '--format', 'frames', '--overwrite', ...FAST]);
    expectOneLineError(result, IO, folder, NOT_OURS);
    expect(result.stderr).toMatch(/holding (notes\.txt|sub)/);
    const userFilesLost = await lost(dir, before);
    const left = await leftovers(dir);
    recordFaults({ badInputs: 1, userFilesLost, filesLeftBehind: left.length });
    expect(userFilesLost).toBe(0);
    expect(left).toEqual([]);
  });

  it('generate: frames with no sidecar of this tool saying it wrote them are refused', async () => {
    const dir = await caseDir();
    const folder = join(dir, 'frames');
    await mkdir(folder);
    await writeFile(join(folder, 'frame_00000.png'), 'from another program');
    const before = await snapshot(dir);
    expectOneLineError(
      await cli(['generate', 'a red ball', '-o', folder, '--overwrite', ...FAST]),
      IO,
      'holds frames that no sidecar of this tool',
    );
    const userFilesLost = await lost(dir, before);
    recordFaults({ badInputs: 1, userFilesLost });
    expect(userFilesLost).toBe(0);
  });

  it('generate: the current folder, a folder above it and the home folder are never replaced', async () => {
    const dir = await caseDir();
    const home = join(dir, 'home');
    const cwd = join(dir, 'work', 'deeper');
    await mkdir(home);
    await mkdir(cwd, { recursive: true });
    await writeFile(join(home, '.profile'), 'mine');
    await writeFile(join(dir, 'work', 'todo.txt'), 'mine');
    const before = await snapshot(dir);
    const cases = [
      ['.', '. is the current folder: never replaced'],
      ['..', 'is a folder above the current one: never replaced'],
      [dir, 'is a folder above the current one: never replaced'],
      [home, `${home} is your home folder: never replaced`],
    ] as const;
    for (const [output, message] of cases) {
      const result = await cli(['generate', 'a red ball', '-o', output, '--format', 'frames', '--overwrite', ...FAST], { HOME: home }, cwd);
      expectOneLineError(result, IO, message);
    }
    // Also an empty current folder: what it holds does not matter.
    expectOneLineError(await cli(['generate', 'a', '-o', '.', '--format', 'frames', '--overwrite', ...FAST], {}, cwd), IO, 'never replaced');
    const userFilesLost = await lost(dir, before);
    recordFaults({ badInputs: cases.length + 2, userFilesLost });
    expect(userFilesLost).toBe(0);
  });

  it('the root folder is never replaced (checked in-process: a broken build must not get to try it)', async () => {
    await expectSoraError(checkReplaceable('/', framesOutput('/.json'), true), 'IO', '/ is the root folder: never replaced');
  });

  it('generate: a JSON file where the sidecar goes is not replaced unless it is a sidecar of this tool', async () => {
    const dir = await caseDir();
    await writeFile(join(dir, 'clip.json'), '{"my": "settings"}\n');
    const before = await snapshot(dir);
    expectOneLineError(
      await cli(['generate', 'a red ball', '-o', join(dir, 'clip.mp4'), '--overwrite', ...FAST]),
      IO,
      'clip.json is not a sidecar this tool wrote',
    );
    expect(await readdir(dir)).toEqual(['clip.json']);
    const userFilesLost = await lost(dir, before);
    recordFaults({ badInputs: 1, userFilesLost });
    expect(userFilesLost).toBe(0);
  });

  it('generate: its own previous outputs (a frames folder with its sidecar, a video file) are replaced', async () => {
    const dir = await caseDir();
    const frames = join(dir, 'frames');
    for (const seed of ['1', '2']) {
      const result = await cli(['generate', 'a red ball', '-o', frames, ...FAST, '--seed', seed, '--overwrite']);
      expect(result.code, result.stderr).toBe(0);
    }
    expect((await readdir(frames)).every((name) => /^frame_\d{5}\.png$/.test(name))).toBe(true);
    expect(JSON.parse(await readFile(join(dir, 'frames.json'), 'utf8')).seed).toBe(2);
    const video = join(dir, 'clip.mp4');
    await writeFile(video, 'an old file the user named');
    const result = await cli(['generate', 'a red ball', '-o', video, ...FAST, '--overwrite']);
    expect(result.code, result.stderr).toBe(0);
    expect((await readdir(dir)).sort()).toEqual(['clip.json', 'clip.mp4', 'frames', 'frames.json']);
  });

  it('batch: a line whose frames folder holds the user\'s files fails, the files stay, the other line is done', async () => {
    const dir = await caseDir();
    const file = join(dir, 'prompts.jsonl');
    await writeFile(file, '{"prompt": "a red ball", "output": "keep"}\n{"prompt": "a blue cube"}\n');
    const out = join(dir, 'out');
    await mkdir(join(out, 'keep'), { recursive: true });
    await writeFile(join(out, 'keep', 'holiday.txt'), 'mine');
    const before = await snapshot(dir);
    const result = await cli(['batch', file, '-o', out, '--format', 'frames', '--overwrite', ...FAST]);
    expect(result.code, result.stderr).toBe(IO);
    expect(result.stderr).toContain(`error: line 1: ${join(out, 'keep')} is a folder holding holiday.txt`);
    expect(result.stdout).toMatch(/2 prompts: 1 done, 1 failed/);
    const userFilesLost = await lost(dir, before);
    recordFaults({ badInputs: 1, userFilesLost });
    expect(userFilesLost).toBe(0);
  });
});

describe('models make-synthetic --overwrite', () => {
  it('refuses a folder that is not only a model, and the protected folders, before any work', async () => {
    const dir = await caseDir();
    const plain = join(dir, 'plain');
    await mkdir(plain);
    await writeFile(join(plain, 'thesis.tex'), 'mine');
    const model = join(dir, 'model');
    await cp(join(ROOT, 'models', 'tiny'), model, { recursive: true });
    await writeFile(join(model, 'NOTES.md'), 'mine');
    const before = await snapshot(dir);
    const make = (output: string, cwd = ROOT) =>
      cli(['models', 'make-synthetic', '--preset', 'opensora-1.2', '--depth', '1', '--hidden', '32', '-o', output, '--overwrite'], {}, cwd);
    expectOneLineError(await make(plain), IO, `${plain} is not a model folder`, NOT_OURS);
    expectOneLineError(await make(model), IO, `${model} holds NOTES.md, which its manifest does not list`, NOT_OURS);
    expectOneLineError(await make('.', plain), IO, '. is the current folder: never replaced');
    const userFilesLost = await lost(dir, before);
    const left = [...(await leftovers(dir)), ...(await leftovers(plain))];
    recordFaults({ badInputs: 3, userFilesLost, filesLeftBehind: left.length });
    expect(userFilesLost).toBe(0);
    expect(left).toEqual([]);
  });

  it('replaces a model folder holding only what its manifest lists (skipped without Python and torch)', async (context) => {
    const problem = await syntheticModelProblem();
    if (problem !== null) context.skip(problem);
    const model = join(await caseDir(), 'model');
    await cp(join(ROOT, 'models', 'tiny'), model, { recursive: true });
    const result = await cli(['models', 'make-synthetic', '--preset', 'opensora-1.2', '--depth', '1', '--hidden', '32', '-o', model, '--overwrite']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8')).name).toBe('synthetic-d1-h32');
  });
});
