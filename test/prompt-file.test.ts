import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultOutputName, planOutputs } from '../src/batch/plan.js';
import { readPromptFile } from '../src/batch/prompt-file.js';
import { inShard, shardFlag } from '../src/batch/shard.js';
import { displayPath } from '../src/display-path.js';
import { expectSoraError } from './helpers/expect-error.js';
import { tempDir } from './helpers/model-folder.js';

let root: string;
let counter = 0;

beforeAll(async () => {
  root = await tempDir('sora-prompt-file-');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function promptFile(extension: string, text: string): Promise<string> {
  const path = join(root, `prompts-${counter++}.${extension}`);
  await writeFile(path, text);
  return path;
}

describe('prompt files', () => {
  it('.txt: one prompt per line; blank lines and # comments skipped; CRLF and a BOM tolerated', async () => {
    const path = await promptFile('txt', '\uFEFF# my prompts\r\na red ball\r\n\r\n  # indented comment\r\n  a cat, sleeping  \r\n');
    const file = await readPromptFile(path);
    expect(file.problems).toEqual([]);
    expect(file.entries).toEqual([
      { index: 0, line: 2, prompt: 'a red ball' },
      { index: 1, line: 5, prompt: 'a cat, sleeping' },
    ]);
  });

  it('.jsonl: overrides are read and checked per line; a bad line is reported with file:line and the rest is kept', async () => {
    const path = await promptFile(
      'jsonl',
      [
        '{"prompt": "a red ball", "seed": 3, "steps": 2, "num_frames": 34, "resolution": "128x192", "output": "ball.webm"}',
        '{"prompt": "a cat", "sead": 3}',
        'not json',
        '',
        '{"prompt": "a dog", "resolution": "100x100"}',
        '{"prompt": "   "}',
        '{"seed": 1}',
        '{"prompt": "ok", "output": "../escape.mp4"}',
        '["a list"]',
        '{"prompt": "a fish", "steps": 1.5}',
        '{"prompt": "last"}',
      ].join('\n'),
    );
    const file = await readPromptFile(path);
    const where = (line: number): string => `${displayPath(path)}:${line}: `;
    expect(file.entries).toEqual([
      {
        index: 0,
        line: 1,
        prompt: 'a red ball',
        seed: 3,
        steps: 2,
        numFrames: 34,
        resolution: { width: 128, height: 192 },
        output: 'ball.webm',
      },
      { index: 9, line: 11, prompt: 'last' },
    ]);
    expect(file.problems.map((p) => [p.index, p.line])).toEqual([
      [1, 2],
      [2, 3],
      [3, 5],
      [4, 6],
      [5, 7],
      [6, 8],
      [7, 9],
      [8, 10],
    ]);
    const messages = file.problems.map((p) => p.message);
    expect(messages[0]).toBe(`${where(2)}unknown field "sead" (known: prompt, seed, steps, num_frames, resolution, output)`);
    expect(messages[1]).toMatch(new RegExp(`^${where(3)}not valid JSON`));
    expect(messages[2]).toBe(`${where(5)}resolution: width and height must be multiples of 16 from 16 to 2048, got "100x100"`);
    expect(messages[3]).toBe(`${where(6)}prompt: is empty, got "   "`);
    expect(messages[4]).toBe(`${where(7)}prompt: is missing`);
    expect(messages[5]).toMatch(new RegExp(`^${where(8)}output: must be a plain file name`));
    expect(messages[6]).toBe(`${where(9)}must be a JSON object with a "prompt" field`);
    expect(messages[7]).toBe(`${where(10)}steps: must be an integer from 1 to 1000, got 1.5`);
  });

  it('.csv: header names the columns; quoted commas kept; empty cells absent; bad records reported by line', async () => {
    const path = await promptFile(
      'csv',
      [
        '# comment before the header',
        'prompt,seed,output',
        '"a red ball, bouncing",7,ball',
        'a cat,,',
        'a dog,seven,',
        '"unclosed,1,x',
        'too,many,fields,here',
        '"He said ""hi""",1,',
      ].join('\n'),
    );
    const file = await readPromptFile(path);
    expect(file.entries).toEqual([
      { index: 0, line: 3, prompt: 'a red ball, bouncing', seed: 7, output: 'ball' },
      { index: 1, line: 4, prompt: 'a cat' },
      { index: 5, line: 8, prompt: 'He said "hi"', seed: 1 },
    ]);
    expect(file.problems.map((p) => p.message)).toEqual([
      `${displayPath(path)}:5: seed: must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got "seven"`,
      `${displayPath(path)}:6: not a valid CSV record (a stray or unclosed quote?)`,
      `${displayPath(path)}:7: 4 fields, but the header names 3`,
    ]);
  });

  it('refuses a CSV without a prompt column, an empty file, an unknown extension and a missing file', async () => {
    await expectSoraError(readPromptFile(await promptFile('csv', 'text,seed\na,1\n')), 'INPUT', ':1: the first line must name the columns');
    await expectSoraError(readPromptFile(await promptFile('txt', '# nothing\n\n')), 'INPUT', 'no prompts in the file');
    await expectSoraError(readPromptFile(await promptFile('md', 'a\n')), 'USAGE', 'must end in .txt, .jsonl, .csv');
    await expectSoraError(readPromptFile(join(root, 'missing.txt')), 'INPUT', 'cannot read prompt file');
  });
});

describe('outputs of a batch', () => {
  it('default names: line number and the prompt in a few words; the line may name its own', () => {
    expect(defaultOutputName({ index: 0, line: 7, prompt: 'A Red Ball — bouncing!' })).toBe('0007-a-red-ball-bouncing');
    expect(defaultOutputName({ index: 0, line: 12, prompt: '日本' })).toBe('0012-prompt');
    const plan = planOutputs(
      [
        { index: 0, line: 1, prompt: 'a' },
        { index: 1, line: 2, prompt: 'b', output: 'x.webm' },
        { index: 2, line: 3, prompt: 'c', output: 'x.gif' },
        { index: 3, line: 4, prompt: 'd', output: 'frames' },
      ],
      root,
      'mp4',
      'p.jsonl',
    );
    expect(plan.jobs.map((job) => [job.format, job.path])).toEqual([
      ['mp4', join(root, '0001-a.mp4')],
      ['webm', join(root, 'x.webm')],
      ['mp4', join(root, 'frames.mp4')],
    ]);
    // x.gif would share x.webm's sidecar x.json.
    expect(plan.problems.map((p) => p.message)).toEqual(['p.jsonl:3: output: x.gif is also written by line 2']);
  });
});

describe('--shard', () => {
  it.each(['0/2', '3/2', '1/0', '2', 'a/b', '1/2/3', '-1/2', ''])('"%s" is refused', (text) => {
    const parsed = shardFlag.safeParse(text);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.message).toBe('must be I/N with 1 ≤ I ≤ N, e.g. 2/4');
  });

  it('splits by position modulo N: every prompt in exactly one shard, the same one every time', () => {
    const positions = Array.from({ length: 11 }, (_, i) => i);
    const shards = [1, 2, 3].map((index) => positions.filter((p) => inShard(p, shardFlag.parse(`${index}/3`))));
    expect(shards).toEqual([
      [0, 3, 6, 9],
      [1, 4, 7, 10],
      [2, 5, 8],
    ]);
    expect(positions.filter((p) => inShard(p, undefined))).toEqual(positions);
  });
});
