import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { assertBuilt, cli, expectOneLineError } from './helpers/cli.js';
import { tempDir, writeModelFolder } from './helpers/model-folder.js';

// Every case here must fail before any block is loaded, so a model folder with stub graphs is enough: the manifest
// is real and valid, the graphs never run.
let root: string;
let model: string;
let out: string;
let caseNumber = 0;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-generate-cli-');
  model = join(root, 'model');
  await mkdir(model);
  await writeModelFolder(model);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

beforeEach(async () => {
  out = join(root, `out-${caseNumber++}`);
  await mkdir(out);
});

const generate = (...args: string[]) => cli(['generate', ...args]);
const { USAGE, INPUT, IO, DEPENDENCY } = ERROR_EXIT_CODES;

async function expectNothingWritten(): Promise<void> {
  expect(await readdir(out)).toEqual([]);
}

describe('generate: bad input fails with one line before any work, and writes nothing', () => {
  it('empty or whitespace prompt', async () => {
    for (const prompt of ['', '   ']) {
      expectOneLineError(await generate(prompt, '-o', join(out, 'x.mp4'), '--model', model), INPUT, 'prompt is empty');
    }
    await expectNothingWritten();
  });

  it.each([
    [['--steps', '0'], '--steps: must be an integer from 1 to 1000, got "0"'],
    [['--steps', '-3'], '--steps: must be an integer from 1 to 1000, got "-3"'],
    [['--steps', '2.5'], '--steps: must be an integer from 1 to 1000, got "2.5"'],
    [['--cfg-scale', 'abc'], '--cfg-scale: must be a number from 0 to 100, got "abc"'],
    [['--cfg-scale', 'NaN'], '--cfg-scale: must be a number from 0 to 100, got "NaN"'],
    [['--num-frames', '20'], '--num-frames: must be a multiple of 17'],
    [['--num-frames', '0'], '--num-frames: must be a multiple of 17 from 17 to 408, got "0"'],
    [['--resolution', '250x256'], '--resolution: width and height must be multiples of 16 from 16 to 2048, got "250x256"'],
    [['--resolution', '256'], '--resolution: must be WIDTHxHEIGHT, e.g. 256x256, got "256"'],
    [['--seed', '-1'], '--seed: must be an integer from 0 to'],
    [['--fps', '0'], '--fps: must be a number above 0, at most 240, got "0"'],
    [['--aes', 'high'], '--aes: must be a number from 0 to 10, got "high"'],
    [['--timestep-transform', 'linear'], '--timestep-transform: must be one of: opensora, ios, got "linear"'],
    [['--format', 'avi'], '--format: must be one of: mp4, webm, gif, frames, got "avi"'],
    [['--backend', 'tensorflow'], '--backend: must be one of: onnx, coreml, remote, got "tensorflow"'],
    [['--execution-provider', 'tpu'], '--execution-provider: must be one of: cpu, cuda, coreml, got "tpu"'],
    [['--compute-units', 'npu'], '--compute-units: must be one of: all, cpu, cpu-gpu, cpu-ane, got "npu"'],
  ])('%j → usage error', async (flags, message) => {
    expectOneLineError(await generate('a red ball', '-o', join(out, 'x.mp4'), '--model', model, ...flags), USAGE, message);
    await expectNothingWritten();
  });

  it('an output extension it cannot encode without --format', async () => {
    expectOneLineError(await generate('a red ball', '-o', join(out, 'x.mov'), '--model', model), USAGE, '--format');
    await expectNothingWritten();
  });

  it('output folder that does not exist or is not a folder', async () => {
    const missing = join(out, 'no-such-folder');
    expectOneLineError(
      await generate('a red ball', '-o', join(missing, 'x.mp4'), '--model', model),
      IO,
      `output folder ${missing} does not exist`,
    );
    await writeFile(join(out, 'file'), '');
    expectOneLineError(
      await generate('a red ball', '-o', join(out, 'file', 'x.mp4'), '--model', model),
      IO,
      'is not a folder',
    );
    expect(await readdir(out)).toEqual(['file']);
  });

  it('no ffmpeg at the --ffmpeg path', async () => {
    expectOneLineError(
      await generate('a red ball', '-o', join(out, 'x.mp4'), '--model', model, '--ffmpeg', '/nonexistent'),
      DEPENDENCY,
      '/nonexistent',
    );
    await expectNothingWritten();
  });

  it.skipIf(process.platform === 'darwin')('--backend coreml outside macOS', async () => {
    expectOneLineError(
      await generate('a red ball', '-o', join(out, 'x.mp4'), '--model', model, '--backend', 'coreml'),
      DEPENDENCY,
      'the CoreML backend needs macOS',
    );
    await expectNothingWritten();
  });

  it('an existing output without --overwrite, which stays untouched', async () => {
    await writeFile(join(out, 'x.mp4'), 'precious');
    expectOneLineError(
      await generate('a red ball', '-o', join(out, 'x.mp4'), '--model', model),
      IO,
      'already exists (pass --overwrite to replace it)',
    );
    expect(await readdir(out)).toEqual(['x.mp4']);
    expect(await readFile(join(out, 'x.mp4'), 'utf8')).toBe('precious');
  });
});
