/** The eval's frame analysis and scoring on clips drawn like the shapes world's training videos. */
import { describe, expect, it } from 'vitest';
import type { VideoFrames } from '../src/eval/frame-analysis.js';
import { scoreVideo, type VideoScore } from '../src/eval/video-score.js';
import type { Rgb, Shape, VideoAttributes } from '../src/eval/world.js';
import { noiseClip, renderClip, TEST_WORLD } from './helpers/shapes-frames.js';

const world = TEST_WORLD;

function clipOf(attributes: VideoAttributes, size = 64): VideoFrames {
  return renderClip({
    shape: attributes.shape,
    colour: world.colours[attributes.colour]!,
    background: world.colours[attributes.background]!,
    motion: world.motions[attributes.motion]!,
    size,
  });
}

function failing(score: VideoScore): string[] {
  return (['background', 'colour', 'shape', 'motion', 'consistency'] as const).filter((criterion) => !score[criterion].pass);
}

const RED_CIRCLE_LEFT: VideoAttributes = { shape: 'circle', colour: 'red', background: 'black', motion: 'left' };

describe('scoreVideo', () => {
  const cases = world.shapes.flatMap((shape) => Object.keys(world.motions).map((motion) => [shape, motion] as [Shape, string]));

  it.each(cases)('a %s %s passes every criterion for what it shows', (shape, motion) => {
    const attributes: VideoAttributes = { shape, colour: 'yellow', background: 'blue', motion };
    const score = scoreVideo(clipOf(attributes), attributes, world);
    expect(failing(score)).toEqual([]);
    expect(score.overall).toBe(1);
    expect(score.shape.detected).toBe(shape);
    expect(score.motion.detected).toBe(motion);
  });

  it('measures what it decides on: colours, votes, travel', () => {
    const score = scoreVideo(clipOf(RED_CIRCLE_LEFT), RED_CIRCLE_LEFT, world);
    expect(score.background.rgb).toEqual([15, 15, 15]);
    expect(score.colour.rgb).toEqual([220, 40, 40]);
    expect(score.shape.votes).toEqual({ circle: 51, square: 0, triangle: 0 });
    expect(score.shape.iou).toBeGreaterThan(0.97);
    expect(score.shape.aspect).toBeCloseTo(1, 1);
    expect(score.shape.radialCv).toBeLessThan(0.02);
    // The helper moves the object 28 px at constant speed.
    expect(score.motion.displacement![0]).toBeCloseTo(-28, 0);
    expect(Math.abs(score.motion.displacement![1])).toBeLessThan(0.5);
    expect(score.motion.angleErrorDeg).toBeLessThan(1);
    expect(score.motion.trackRms).toBeLessThan(0.1);
    expect(score.consistency).toEqual({ pass: true, presence: 1, steadyArea: 1, steadyPosition: 1, steadyColour: 1 });
  });

  it.each([
    ['object colour', { colour: 'blue' }, ['colour'], 'red'],
    ['background', { background: 'white' }, ['background'], 'black'],
    ['shape (square)', { shape: 'square' }, ['shape'], 'circle'],
    ['shape (triangle)', { shape: 'triangle' }, ['shape'], 'circle'],
    ['direction (opposite)', { motion: 'right' }, ['motion'], 'left'],
    ['direction (perpendicular)', { motion: 'up' }, ['motion'], 'left'],
    ['motion (still)', { motion: 'still' }, ['motion'], 'left'],
    ['motion (growing)', { motion: 'growing' }, ['motion'], 'left'],
  ] as const)('fails only the criterion of a wrong %s, detecting the true one', (_name, change, fails, detected) => {
    const score = scoreVideo(clipOf(RED_CIRCLE_LEFT), { ...RED_CIRCLE_LEFT, ...change }, world);
    expect(failing(score)).toEqual(fails);
    expect(score[fails[0]!]).toMatchObject({ pass: false, detected });
    expect(score.overall).toBeCloseTo(4 / 5);
  });

  it('a still object is not moving; growing and shrinking are told apart', () => {
    const still: VideoAttributes = { shape: 'square', colour: 'green', background: 'white', motion: 'still' };
    expect(failing(scoreVideo(clipOf(still), { ...still, motion: 'down' }, world))).toEqual(['motion']);
    const growing: VideoAttributes = { ...still, motion: 'growing' };
    const asShrinking = scoreVideo(clipOf(growing), { ...growing, motion: 'shrinking' }, world);
    expect(failing(asShrinking)).toEqual(['motion']);
    expect(asShrinking.motion.detected).toBe('growing');
    // The helper grows the width 10 → 26 px, as the world does.
    expect(asShrinking.motion.sizeRatio).toBeCloseTo(2.6, 1);
    expect(failing(scoreVideo(clipOf(growing), { ...growing, motion: 'still' }, world))).toEqual(['motion']);
  });

  it('a diagonal is not the straight direction next to it', () => {
    const diagonal: VideoAttributes = { shape: 'triangle', colour: 'orange', background: 'purple', motion: 'up-left' };
    const score = scoreVideo(clipOf(diagonal), { ...diagonal, motion: 'left' }, world);
    expect(failing(score)).toEqual(['motion']);
    expect(score.motion.angleErrorDeg).toBeCloseTo(45, 0);
    expect(score.motion.detected).toBe('up-left');
  });

  it('noise fails everything: no background colour, no object, no consistency', () => {
    const score = scoreVideo(noiseClip(64, 51), RED_CIRCLE_LEFT, world);
    expect(failing(score)).toEqual(['background', 'colour', 'shape', 'motion', 'consistency']);
    expect(score.consistency.presence).toBe(0);
  });

  it('an object that drops out or flickers in size fails consistency only', () => {
    const clip = clipOf(RED_CIRCLE_LEFT);
    const background = clip.frames[0]!.subarray(0, 3);
    const dropped = clip.frames.map((frame, t) => (t % 8 === 4 ? flat(frame.length, background) : frame));
    const score = scoreVideo({ ...clip, frames: dropped }, RED_CIRCLE_LEFT, world);
    expect(failing(score)).toEqual(['consistency']);
    expect(score.consistency.presence).toBeCloseTo(45 / 51);

    const small = clipOf({ ...RED_CIRCLE_LEFT, motion: 'shrinking' }).frames.at(-1)!;
    const flicker = clip.frames.map((frame, t) => (t % 2 === 1 ? small : frame));
    const flickering = scoreVideo({ ...clip, frames: flicker }, { ...RED_CIRCLE_LEFT, motion: 'still' }, world);
    expect(flickering.consistency.pass).toBe(false);
    expect(flickering.consistency.steadyArea).toBeLessThan(0.1);
  });

  it('holds up under pixel noise a model or codec adds (±12 levels)', () => {
    const attributes: VideoAttributes = { shape: 'triangle', colour: 'purple', background: 'yellow', motion: 'down-right' };
    const clip = clipOf(attributes);
    let state = 7;
    const jitter = (): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return (state % 25) - 12;
    };
    const noisy = clip.frames.map((frame) => frame.map((value) => Math.min(255, Math.max(0, value + jitter()))));
    expect(failing(scoreVideo({ ...clip, frames: noisy }, attributes, world))).toEqual([]);
  });

  it('an object one pixel from the border (as the world places them) changes nothing', () => {
    // 20-px shapes: centre 11 puts the box at pixels 1…20; the slide down ends with it at pixels 43…62.
    const corner: VideoAttributes = { shape: 'triangle', colour: 'white', background: 'green', motion: 'still' };
    const atCorner = renderClip({ ...colours(corner), shape: 'triangle', motion: world.motions.still!, centre: [11, 11] });
    expect(failing(scoreVideo(atCorner, corner, world))).toEqual([]);
    const sliding: VideoAttributes = { shape: 'square', colour: 'black', background: 'white', motion: 'down' };
    const toEdge = renderClip({ ...colours(sliding), shape: 'square', motion: world.motions.down!, centre: [32, 37], travel: 32 });
    expect(failing(scoreVideo(toEdge, sliding, world))).toEqual([]);
  });

  it('scales its pixel limits with the frame: a 128-pixel clip scores the same', () => {
    for (const motion of ['right', 'still', 'shrinking']) {
      const attributes: VideoAttributes = { shape: 'square', colour: 'white', background: 'black', motion };
      expect(failing(scoreVideo(clipOf(attributes, 128), attributes, world))).toEqual([]);
    }
  });
});

function colours(attributes: VideoAttributes): { colour: Rgb; background: Rgb } {
  return { colour: world.colours[attributes.colour]!, background: world.colours[attributes.background]! };
}

function flat(length: number, rgb: Uint8Array): Uint8Array {
  const frame = new Uint8Array(length);
  for (let i = 0; i < length; i += 3) frame.set(rgb, i);
  return frame;
}
