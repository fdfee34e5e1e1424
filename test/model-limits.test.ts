/**
 * What a model cannot do, said before any work, through the built CLI: words the shapes model never learned and
 * two-object prompts are warned about (an error with --strict-prompt), sizes outside the manifest's declared ones
 * are refused with the valid ones listed (tried with a warning under --allow-any-size), and a model without a
 * vocabulary (the tiny one, like real Open-Sora weights) is never warned.
 */
import { existsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { promptProblems, promptWords } from '../src/text/prompt-vocabulary.js';
import { assertBuilt, cli, expectOneLineError, ROOT } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { tempDir } from './helpers/model-folder.js';

const SHAPES = { ONDEVICE_SORA_MODEL: join(ROOT, 'models', 'shapes') };
const VOCABULARY = { words: ['a', 'red', 'blue', 'circle', 'square', 'on', 'white', 'background', 'and'], objectWords: ['circle', 'square'], maxObjects: 1 };
const { USAGE, INPUT } = ERROR_EXIT_CODES;

let root: string;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-limits-');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The warning lines of a run whose stderr is not a terminal: pino JSON lines at level 40. */
function warnings(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string })
    .filter((entry) => entry.level === 40)
    .map((entry) => entry.msg);
}

describe('prompt vocabulary', () => {
  it('splits words as the captions were split, and names each unknown word once', () => {
    expect(promptWords('A red-circle, moving UP!')).toEqual(['a', 'red', 'circle', 'moving', 'up']);
    const problems = promptProblems('a cat and a cat on a red piano', VOCABULARY);
    expect(problems.unknown).toEqual(['cat', 'piano']);
    expect(problems.messages).toEqual([expect.stringContaining('does not know "cat", "piano"')]);
  });

  it('counts the objects a prompt names against the most the model draws', () => {
    const problems = promptProblems('a red circle and a blue square on a white background', VOCABULARY);
    expect(problems.unknown).toEqual([]);
    expect(problems.objects).toEqual(['circle', 'square']);
    expect(problems.messages).toEqual(['names 2 objects (circle, square), but the model draws one object: expect one object, or a mix of them']);
    expect(promptProblems('a red circle and a blue square', { ...VOCABULARY, maxObjects: 2 }).messages).toEqual([]);
  });
});

describe('generate on the shapes model', () => {
  it('warns, in one line, about words it does not know, and still makes the video', async () => {
    const video = join(root, 'cat.mp4');
    const result = await cli(['generate', 'a cat playing piano', '-o', video, '--steps', '2', '--seed', '1'], SHAPES);
    expect(result.code, result.stderr).toBe(0);
    expect(warnings(result.stderr)).toEqual([
      'prompt: the model does not know "cat", "playing", "piano": it was trained on 38 words (see `models inspect`), ' +
        'and words outside them are spelled out letter by letter and have no effect',
    ]);
    expect(existsSync(video)).toBe(true);
  });

  it('warns about two objects on a one-object model', async () => {
    const prompt = 'a red circle and a blue square on a white background';
    const result = await cli(['generate', prompt, '-o', join(root, 'two.mp4'), '--steps', '2', '--seed', '1'], SHAPES);
    expect(result.code, result.stderr).toBe(0);
    expect(warnings(result.stderr)).toEqual([expect.stringMatching(/^prompt: names 2 objects \(circle, square\), but the model draws one object/)]);
  });

  it('--strict-prompt makes it an error before any work, leaving nothing behind', async () => {
    const video = join(root, 'strict.mp4');
    const result = await cli(['generate', 'a red ball bouncing', '-o', video, '--strict-prompt'], SHAPES);
    expectOneLineError(result, INPUT, 'prompt: the model does not know "ball", "bouncing"', '(--strict-prompt)');
    expect(existsSync(video)).toBe(false);
    recordFaults({ badInputs: 1 });
  });

  it('refuses sizes it was not made for, listing the valid ones; --allow-any-size tries with a warning', async () => {
    const prompt = 'a red circle moving up on a black background';
    const video = join(root, 'size.mp4');
    expectOneLineError(await cli(['generate', prompt, '-o', video, '--resolution', '128x128'], SHAPES), USAGE, '--resolution: shapes was made for 64x64, not 128x128', '--allow-any-size');
    expectOneLineError(await cli(['generate', prompt, '-o', video, '--num-frames', '17'], SHAPES), USAGE, '--num-frames: shapes was made for 51 frames, not 17');
    expect(existsSync(video)).toBe(false);
    recordFaults({ badInputs: 2 });
    const tried = await cli(['generate', prompt, '-o', video, '--num-frames', '17', '--steps', '1', '--allow-any-size'], SHAPES);
    expect(tried.code, tried.stderr).toBe(0);
    expect(warnings(tried.stderr)).toEqual([expect.stringMatching(/^--num-frames: shapes was made for 51 frames, not 17 .*trying anyway \(--allow-any-size\)/)]);
  });
});

describe('models without a vocabulary', () => {
  it('are never warned about words (the tiny model, like real Open-Sora weights)', async () => {
    const result = await cli(['generate', 'a cat playing piano', '-o', join(root, 'tiny.mp4'), '--steps', '1', '--resolution', '128x128', '--strict-prompt']);
    expect(result.code, result.stderr).toBe(0);
    expect(warnings(result.stderr)).toEqual([]);
  });
});

describe('batch on the shapes model', () => {
  it('--strict-prompt fails the lines it cannot draw and goes on with the others', async () => {
    const file = join(root, 'prompts.txt');
    await writeFile(file, 'a red circle moving up on a black background\na cat playing piano\n');
    const out = join(root, 'batch');
    const result = await cli(['batch', file, '-o', out, '--steps', '1', '--seed', '1', '--strict-prompt'], SHAPES);
    expect(result.code, result.stderr).toBe(INPUT);
    expect(result.stderr).toContain('error: line 2: prompt: the model does not know "cat", "playing", "piano"');
    expect((await readdir(out)).filter((name) => name.endsWith('.mp4'))).toEqual(['0001-a-red-circle-moving-up-on-a-black-background.mp4']);
    recordFaults({ badInputs: 1 });
  });
});
