/**
 * `eval` through the built CLI: scoring a real mp4 (drawn frames encoded by real ffmpeg) against a prompt, and the
 * whole evaluation on the shipped tiny model (random weights, so its scores mean nothing; the mechanics are checked).
 */
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { EvalReportSchema, VideoScoreSchema } from '../src/eval/report.js';
import { findFfmpeg } from '../src/video/ffmpeg.js';
import { writeVideo } from '../src/video/video-writer.js';
import { assertBuilt, cli, expectOneLineError } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';
import { renderClip, TEST_WORLD } from './helpers/shapes-frames.js';

let root: string;
let worldFile: string;
let video: string;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-eval-');
  worldFile = join(root, 'world.json');
  await writeFile(worldFile, JSON.stringify(TEST_WORLD));
  const world = TEST_WORLD;
  const clip = renderClip({ shape: 'circle', colour: world.colours.red!, background: world.colours.black!, motion: world.motions.left! });
  video = join(root, 'red-circle-left.mp4');
  const ffmpeg = await findFfmpeg(undefined);
  await writeVideo(clip.frames, { format: 'mp4', width: clip.width, height: clip.height, fps: world.fps }, { path: video, ffmpegPath: ffmpeg.path });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('eval --video', () => {
  it('scores a real mp4 against the prompt it shows: every criterion passes', async () => {
    const prompt = 'a red circle moving left on a black background';
    const result = await cli(['eval', '--video', video, '--prompt', prompt, '--world', worldFile]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/red-circle-left\.mp4: 51 frames, 64x64$/);
    for (const criterion of ['background', 'colour', 'shape', 'motion', 'consistency']) {
      expect(lines.find((line) => line.startsWith(`${criterion} `))).toMatch(/^\w+ +pass {2}/);
    }
    expect(lines.find((line) => line.startsWith('motion '))).toMatch(/left \(expected left; travel -2\d\.\d, [+-]\d\.\d px, \d+° off/);
    expect(lines.at(-1)).toMatch(/^score +5\/5$/);
  });

  it('reports each wrong attribute as FAIL with what it found, and still exits 0', async () => {
    const result = await cli(['eval', '--video', video, '--prompt', 'a blue circle moving right on black', '--world', worldFile, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const output = JSON.parse(result.stdout) as { expected: unknown; score: unknown };
    expect(output.expected).toEqual({ colour: 'blue', shape: 'circle', background: 'black', motion: 'right' });
    const score = VideoScoreSchema.parse(output.score);
    expect(score.colour).toMatchObject({ pass: false, detected: 'red' });
    expect(score.motion).toMatchObject({ pass: false, detected: 'left' });
    expect(score.motion.angleErrorDeg).toBeGreaterThan(170);
    expect([score.background.pass, score.shape.pass, score.consistency.pass]).toEqual([true, true, true]);
    expect(score.passed).toBe(3);
  });

  it('scores a two-object video object by object', async () => {
    const world = TEST_WORLD;
    const background = world.colours.white!;
    const circle = renderClip({ shape: 'circle', colour: world.colours.red!, background, motion: world.motions.left!, centre: [32, 16], travel: 24 });
    const square = renderClip({ shape: 'square', colour: world.colours.blue!, background, motion: world.motions.still!, centre: [32, 46] });
    // The square drawn over the circle's frames wherever it differs from the background (they never meet).
    const frames = circle.frames.map((frame, t) => frame.map((value, i) => (square.frames[t]![i - (i % 3)] === background[0] && square.frames[t]![i - (i % 3) + 1] === background[1] && square.frames[t]![i - (i % 3) + 2] === background[2] ? value : square.frames[t]![i]!)));
    const pair = join(root, 'pair.mp4');
    const ffmpeg = await findFfmpeg(undefined);
    await writeVideo(frames, { format: 'mp4', width: 64, height: 64, fps: world.fps }, { path: pair, ffmpegPath: ffmpeg.path });
    const prompt = 'a red circle moving left and a blue square staying still on a white background';
    const result = await cli(['eval', '--video', pair, '--prompt', prompt, '--world', worldFile]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines.filter((line) => line.startsWith('object '))).toEqual(['object 1: red circle left', 'object 2: blue square still']);
    expect(lines.filter((line) => / FAIL /.test(line))).toEqual([]);
    expect(lines.at(-1)).toMatch(/^score +9\/9$/);
    const wrong = await cli(['eval', '--video', pair, '--prompt', prompt.replace('staying still', 'moving up'), '--world', worldFile, '--json']);
    const output = JSON.parse(wrong.stdout) as { score: { passed: number; objects: { motion: { pass: boolean; detected: string | null } }[] } };
    expect(output.score.objects.map((object) => object.motion)).toEqual([expect.objectContaining({ pass: true }), expect.objectContaining({ pass: false, detected: 'still' })]);
    expect(output.score.passed).toBe(8);
  });

  it('a prompt without the world\'s attributes is one usage error naming the flag and what is missing', async () => {
    const result = await cli(['eval', '--video', video, '--prompt', 'a red ball bouncing', '--world', worldFile]);
    expectOneLineError(result, ERROR_EXIT_CODES.USAGE, '--prompt: cannot find the object colour, shape, background, motion in "a red ball bouncing"');
  });

  it('refuses flags that do not fit, before any work', async () => {
    const { USAGE, INPUT } = ERROR_EXIT_CODES;
    expectOneLineError(await cli(['eval', '--video', video, '--world', worldFile]), USAGE, '--video: needs --prompt');
    expectOneLineError(await cli(['eval', '--prompt', 'a red circle moving left on black']), USAGE, '--prompt: only applies with --video');
    const prompt = 'a red circle moving left on black';
    expectOneLineError(await cli(['eval', '--video', video, '--prompt', prompt, '--seeds', '2']), USAGE, '--seeds: does not apply with --video');
    expectOneLineError(await cli(['eval', '--video', join(root, 'none.mp4'), '--prompt', prompt, '--world', worldFile]), INPUT, 'none.mp4 is not a file');
    expectOneLineError(await cli(['eval', '--video', worldFile, '--prompt', prompt, '--world', worldFile]), INPUT, '--video: ffmpeg cannot decode');
    expectOneLineError(await cli(['eval', '--configs', 'baseline,faster', '--model', 'models/tiny']), USAGE, '--configs: must be a comma-separated list of baseline, lpl15');
    expectOneLineError(await cli(['eval', '--prompts', '0']), USAGE, '--prompts: must be a positive integer or all');
    expectOneLineError(await cli(['eval', '--model', 'models/tiny', '--world', worldFile, '--prompts', '9']), USAGE, '--prompts: the world has 2 held-out prompts');
    expectOneLineError(await cli(['eval', '--model', 'models/tiny']), INPUT, 'cannot read the world file models/tiny/world.json');
  });
});

describe('eval on the tiny model', () => {
  it('generates every held-out prompt per configuration with the same seeds, scores it, and times the denoising', async () => {
    // The tiny model's smallest resolution; 17 frames is one VAE chunk.
    const world = { ...TEST_WORLD, size: 128, num_frames: 17 };
    const tinyWorld = join(root, 'tiny-world.json');
    await writeFile(tinyWorld, JSON.stringify(world));
    const reportFile = join(root, 'report.json');
    const videos = join(root, 'videos');
    const args = ['eval', '--model', 'models/tiny', '--world', tinyWorld, '--configs', 'lpl15', '--seed', '7', '--report', reportFile];
    const result = await cli([...args, '--save-videos', videos]);
    expect(result.code, result.stderr).toBe(0);

    const report = EvalReportSchema.parse(JSON.parse(await readFile(reportFile, 'utf8')));
    // The baseline always runs, first.
    expect(report.summary.map((row) => row.config)).toEqual(['baseline', 'lpl15']);
    expect(report.settings).toMatchObject({ steps: 30, width: 128, height: 128, numFrames: 17, seeds: [7], prompts: 2 });
    expect(report.runs.map((run) => [run.config, run.promptIndex, run.seed])).toEqual([
      ['baseline', 0, 7],
      ['lpl15', 0, 7],
      ['baseline', 1, 7],
      ['lpl15', 1, 7],
    ]);
    for (const run of report.runs) {
      expect(run.score.frames).toBe(17);
      expect(run.score.size).toEqual({ width: 128, height: 128 });
      expect(run.expected).toEqual({ ...world.heldout[run.promptIndex]!, prompt: undefined });
      expect(run.video).toBe(join(videos, `${run.config}-p0${run.promptIndex}-seed7.mp4`));
    }
    const [baseline, lpl] = report.summary;
    expect(baseline!.evaluations).toBe(30);
    expect(lpl!.evaluations).toBe(16);
    expect(baseline!.speedup).toBe(1);
    // A measured ratio, reported; how large it is belongs to the benchmarks (2 shared cores make it noise here).
    expect(lpl!.speedup).toBeGreaterThan(0);
    for (const row of report.summary) {
      for (const value of [row.background, row.colour, row.shape, row.motion, row.consistency, row.overall]) {
        expect(value).toBeGreaterThanOrEqual(0);
        expect(value).toBeLessThanOrEqual(1);
      }
    }
    expect((await readdir(videos)).sort()).toEqual(report.runs.map((run) => run.video!.slice(videos.length + 1)).sort());

    const table = result.stdout.trimEnd().split('\n');
    expect(table[0]).toBe('tiny: 2 held-out prompts × seed 7, 30 steps, 128x128, 17 frames; each criterion is the share of videos passing it');
    expect(table[2]).toBe('| configuration | background | colour | shape | motion | consistency | overall | vs baseline | denoise (STDiT) | speedup |');
    expect(table[4]).toMatch(/^\| baseline \| (\d\.\d\d \| ){6}(\d\.\d\d|–) \| \d+\.\d\d s \| 1\.00× \|$/);
    expect(table[5]).toMatch(/^\| lpl15 \| (\d\.\d\d \| ){6}(\d\.\d\d|–) \| \d+\.\d\d s \| \d+\.\d\d× \|$/);
    expect(table).toHaveLength(6);
    // Piped (as under nohup or in CI), progress is still one line per generation, so a long run never looks hung.
    expect(result.stderr.trimEnd().split('\n')).toEqual([
      '[1/4] baseline: prompt 1, seed 7',
      expect.stringMatching(/^\[2\/4\] lpl15: prompt 1, seed 7 {2}ETA \d+:\d\d$/),
      expect.stringMatching(/^\[3\/4\] baseline: prompt 2, seed 7 {2}ETA \d+:\d\d$/),
      expect.stringMatching(/^\[4\/4\] lpl15: prompt 2, seed 7 {2}ETA \d+:\d\d$/),
    ]);
  });
});
