/**
 * The strict evaluator judged on the world itself: ground-truth videos of every held-out prompt, rendered by the
 * world's own generator (scripts/render_shapes_world.py, numpy only), must pass every criterion, and each distortion
 * the evaluator exists to catch must fail the criterion that names it: stretched 1.4× along one axis → shape,
 * frozen on the first frame → motion, one frame without the object → consistency.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VideoFrames } from '../src/eval/frame-analysis.js';
import { CRITERIA, OBJECT_CRITERIA, scorePairVideo, scoreVideo, type Criterion } from '../src/eval/video-score.js';
import { heldoutAttributes, loadWorld, pairAttributes, type HeldoutPrompt, type World } from '../src/eval/world.js';
import { isPairEntry, readWorldVideos, type WorldVideo } from '../src/eval/world-videos.js';
import { ROOT } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';

const PYTHON = '/usr/bin/python3';
const run = promisify(execFile);

type GroundTruth = WorldVideo & { readonly entry: HeldoutPrompt };

let root: string;
let world: World;
let truths: GroundTruth[] = [];
let problem: string | null = null;

beforeAll(async () => {
  root = await tempDir('sora-strict-');
  world = await loadWorld(join(ROOT, 'models', 'shapes', 'world.json'));
  if (!existsSync(PYTHON)) {
    problem = `${PYTHON} not found (install python3-numpy, see .ci/run)`;
    return;
  }
  try {
    await run(PYTHON, [join(ROOT, 'scripts', 'render_shapes_world.py'), '--out', root, '--seeds', '3']);
  } catch (error) {
    problem = `${PYTHON} cannot render the world (install python3-numpy, see .ci/run): ${String(error)}`;
    return;
  }
  truths = (await readWorldVideos(root)).filter((truth): truth is GroundTruth => !isPairEntry(truth.entry));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * Runs `check` on every ground truth, yielding to the event loop between videos: scoring is synchronous, and a
 * test worker that never yields for half a minute misses vitest's own messages.
 */
async function eachTruth(check: (truth: GroundTruth, index: number) => void): Promise<void> {
  for (const [index, truth] of truths.entries()) {
    check(truth, index);
    await new Promise((done) => setImmediate(done));
  }
}

function failing(truth: GroundTruth, video: VideoFrames = truth.video): Criterion[] {
  const score = scoreVideo(video, heldoutAttributes(truth.entry), world);
  return CRITERIA.filter((criterion) => !score[criterion].pass);
}

/** Nearest-neighbour stretch about the frame's centre: `sx` along x, `sy` along y, same frame size. */
function stretched(video: VideoFrames, sx: number, sy: number): VideoFrames {
  const { width, height } = video;
  const frames = video.frames.map((frame) => {
    const out = new Uint8Array(frame.length);
    for (let y = 0; y < height; y++) {
      const from = Math.min(height - 1, Math.max(0, Math.floor((y + 0.5 - height / 2) / sy + height / 2)));
      for (let x = 0; x < width; x++) {
        const fx = Math.min(width - 1, Math.max(0, Math.floor((x + 0.5 - width / 2) / sx + width / 2)));
        out.set(frame.subarray((from * width + fx) * 3, (from * width + fx) * 3 + 3), (y * width + x) * 3);
      }
    }
    return out;
  });
  return { ...video, frames };
}

describe('the strict evaluator on the world\'s own videos of the 64 held-out prompts', () => {
  it('ground truth scores 1.0 on every criterion', async (context) => {
    if (problem !== null) context.skip(problem);
    expect(truths).toHaveLength(64);
    const failures: string[] = [];
    await eachTruth((truth) => failures.push(...failing(truth).map((criterion) => `${truth.entry.prompt}: ${criterion}`)));
    expect(failures).toEqual([]);
  });

  it('stretched 1.4× along one axis fails shape, every one of them', async (context) => {
    if (problem !== null) context.skip(problem);
    await eachTruth((truth, i) => {
      const video = i % 2 === 0 ? stretched(truth.video, 1.4, 1) : stretched(truth.video, 1, 1.4);
      expect(failing(truth, video), truth.entry.prompt).toContain('shape');
    });
  });

  it('frozen on its first frame fails motion, unless the prompt asks for staying still', async (context) => {
    if (problem !== null) context.skip(problem);
    await eachTruth((truth) => {
      const frozen = { ...truth.video, frames: truth.video.frames.map(() => truth.video.frames[0]!) };
      const expected = world.motions[truth.entry.motion]!.kind === 'still' ? [] : ['motion'];
      expect(failing(truth, frozen), truth.entry.prompt).toEqual(expected);
    });
  });

  it('one frame without the object (a dropout) fails consistency only', async (context) => {
    if (problem !== null) context.skip(problem);
    await eachTruth((truth, i) => {
      const frames = [...truth.video.frames];
      const at = 1 + (i % (frames.length - 2)); // a different inner frame each time
      const background = frames[at]!.subarray(0, 3); // the corner pixel: the world keeps objects off the border
      frames[at] = frames[at]!.map((_, p) => background[p % 3]!);
      expect(failing(truth, { ...truth.video, frames }), truth.entry.prompt).toEqual(['consistency']);
    });
  });
});

describe('two-object scenes, scored object by object', () => {
  it('the world\'s held-out two-object scenes score 1.0 on the background and on every criterion of both objects', async (context) => {
    if (problem !== null) context.skip(problem);
    const pairDir = join(root, 'pairs');
    await run(PYTHON, [join(ROOT, 'scripts', 'render_shapes_world.py'), '--out', pairDir, '--seeds', '3', '--pairs', '--prompts', '16']);
    const scenes = await readWorldVideos(pairDir);
    expect(scenes).toHaveLength(16);
    for (const { entry, video } of scenes) {
      if (!isPairEntry(entry)) throw new Error('not a pair');
      const expected = pairAttributes(entry);
      const score = scorePairVideo(video, expected, world);
      const failed = score.objects.flatMap((object, i) => OBJECT_CRITERIA.filter((c) => !object[c].pass).map((c) => `object ${i + 1} ${c}`));
      expect(failed, entry.prompt).toEqual([]);
      expect(score.overall).toBe(1);
      // Each object judged against the other's shape, motion and colour fails what differs, only for that object.
      const [first, second] = expected;
      const swapped = scorePairVideo(video, [{ ...first, shape: second.shape, motion: second.motion }, second], world);
      expect(swapped.objects[1], entry.prompt).toEqual(score.objects[1]);
      if (first.shape !== second.shape) expect(swapped.objects[0].shape.pass, entry.prompt).toBe(false);
      await new Promise((done) => setImmediate(done));
    }
  });
});
