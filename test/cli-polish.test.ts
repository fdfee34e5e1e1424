/** What every command shares: --help with examples, colour only where wanted; and generate --preview, models extras. */
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { colorEnabled, painter } from '../src/color.js';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { sheetLayout } from '../src/video/contact-sheet.js';
import { assertBuilt, cli, expectOneLineError } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';
import { syntheticModelProblem } from './helpers/synthetic-model.js';

let root: string;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-polish-');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const COMMANDS = [
  [],
  ['generate'],
  ['batch'],
  ['bench'],
  ['models'],
  ['models', 'inspect'],
  ['models', 'verify'],
  ['models', 'list'],
  ['models', 'make-synthetic'],
  ['models', 'pull'],
  ['models', 'convert'],
  ['models', 'cache'],
  ['models', 'cache', 'prune'],
  ['serve'],
  ['devices'],
  ['device'],
  ['device', 'setup'],
  ['doctor'],
];

describe('--help', () => {
  it.each(COMMANDS.map((path) => [path.join(' ') || '(program)', path]))('%s ends with examples', async (_name, path) => {
    const result = await cli([...path, '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/\nExamples:\n {2}\$ ondevice-sora /);
  });
});

describe('colour', () => {
  it('only on a terminal, never with NO_COLOR set (to anything but empty) or TERM=dumb', () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ isTTY: false }, {})).toBe(false);
    expect(colorEnabled({}, {})).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(colorEnabled({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(painter({ isTTY: true }, {})('ok', 'green')).toBe('\x1b[32mok\x1b[39m');
    expect(painter({ isTTY: true }, { NO_COLOR: 'yes' })('ok', 'green')).toBe('ok');
  });

  it('piped output has no escape codes, with or without NO_COLOR', async () => {
    const result = await cli(['doctor'], { NO_COLOR: '' });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toContain('\x1b[');
  });
});

describe('generate --preview', () => {
  it('writes a contact sheet: up to 16 frames, 4 per row, each at most 160 px wide, with grey gutters', async () => {
    const video = join(root, 'ball.mp4');
    const preview = join(root, 'ball-sheet.png');
    const result = await cli(['generate', 'a red ball', '-o', video, '--steps', '1', '--resolution', '192x128', '--allow-any-size', '--seed', '1', '--preview', preview]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('preview: ');
    const meta = await sharp(preview).metadata();
    // 17 frames → 16 shown in a 4×4 grid; 192×128 frames are downscaled to 160×107, with 4-px gutters around each.
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 4 * 160 + 5 * 4, 4 * 107 + 5 * 4, 3]);
    const { data, info } = await sharp(preview).raw().toBuffer({ resolveWithObject: true });
    const pixel = (x: number, y: number): number[] => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
    // The gutter between the first two tiles of the first row, and the outer margin.
    expect([pixel(4 + 160 + 1, 50), pixel(1, 1)]).toEqual([[128, 128, 128], [128, 128, 128]]);
    expect(sheetLayout(17, 192, 128)).toMatchObject({ columns: 4, rows: 4, thumbWidth: 160, thumbHeight: 107 });
    expect(sheetLayout(17, 192, 128).frames).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16]);
    expect((await readdir(root)).filter((name) => name.endsWith('.part'))).toEqual([]);
  });

  it('refuses a preview that is not .png or would replace the video, before any work', async () => {
    const { USAGE } = ERROR_EXIT_CODES;
    const video = join(root, 'x.mp4');
    expectOneLineError(await cli(['generate', 'a', '-o', video, '--preview', join(root, 'x.jpg')]), USAGE, '--preview: must name a .png file');
    expectOneLineError(await cli(['generate', 'a', '-o', join(root, 'y.png'), '--format', 'gif', '--preview', join(root, 'y.png')]), USAGE, '--preview:');
    expect(existsSync(video)).toBe(false);
  });
});

describe('models', () => {
  it('list: the shipped folders and those under ONDEVICE_SORA_MODELS', async () => {
    const result = await cli(['models', 'list', '--json'], { ONDEVICE_SORA_MODELS: join(process.cwd(), 'models') });
    expect(result.code, result.stderr).toBe(0);
    const listed = JSON.parse(result.stdout) as { folder: string; source: string; name?: string }[];
    expect(listed.map((m) => [m.source, m.name])).toEqual([
      ['shipped', 'shapes'],
      ['shipped', 'tiny'],
      ['shipped', 'tiny-coreml'],
    ]); // each folder listed once
  });

  it('make-synthetic: a DEPENDENCY error naming what to install when there is no Python', async () => {
    const result = await cli(['models', 'make-synthetic', '--preset', 'opensora-1.2', '-o', join(root, 'syn')], {
      PYTHON: join(root, 'no-python'),
    });
    expectOneLineError(result, ERROR_EXIT_CODES.DEPENDENCY, 'needs Python 3 with torch, onnx, numpy and jsonschema', 'apt-get install python3-torch');
    expectOneLineError(
      await cli(['models', 'make-synthetic', '--preset', 'opensora-1.2', '-o', join(root, 'syn'), '--hidden', '100']),
      ERROR_EXIT_CODES.USAGE,
      '--hidden: must be a multiple of 32',
    );
    expect(existsSync(join(root, 'syn'))).toBe(false);
  });

  it('make-synthetic: a paper-wide model folder that loads (skipped without Python and torch)', async (context) => {
    const problem = await syntheticModelProblem();
    if (problem !== null) context.skip(problem);
    const dir = join(root, 'synthetic');
    const result = await cli(['models', 'make-synthetic', '--preset', 'opensora-1.2', '-o', dir, '--depth', '1', '--hidden', '64', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as { name: string; architecture: { stdit: { depth: number; hidden_size: number; num_heads: number } } };
    expect(summary.name).toBe('synthetic-d1-h64');
    expect(summary.architecture.stdit).toMatchObject({ depth: 1, hidden_size: 64, num_heads: 16 });
    expect((await readdir(root)).filter((name) => name.includes('.part'))).toEqual([]);
    expectOneLineError(
      await cli(['models', 'make-synthetic', '--preset', 'opensora-1.2', '-o', dir]),
      ERROR_EXIT_CODES.IO,
      'already exists (pass --overwrite',
    );
  });
});
