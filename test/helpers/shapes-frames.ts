/**
 * Draws shapes-world clips the way the training data generator does: a flat background and one flat, anti-aliased
 * shape (circle, axis-aligned square, triangle pointing up) moving at constant speed, growing or shrinking.
 * Also the world file the eval tests use, with the palette and motions of the real one.
 */
import type { VideoFrames } from '../../src/eval/frame-analysis.js';
import type { Motion, Rgb, Shape, World } from '../../src/eval/world.js';

export const TEST_WORLD: World = {
  version: 2,
  size: 64,
  fps: 24,
  num_frames: 51,
  colours: {
    red: [220, 40, 40],
    green: [40, 170, 60],
    blue: [40, 80, 230],
    yellow: [240, 220, 40],
    white: [245, 245, 245],
    black: [15, 15, 15],
    purple: [140, 60, 200],
    orange: [250, 140, 30],
  },
  shapes: ['circle', 'square', 'triangle'],
  motions: {
    left: { phrase: 'moving left', kind: 'translate', direction: [-1, 0] },
    right: { phrase: 'moving right', kind: 'translate', direction: [1, 0] },
    up: { phrase: 'moving up', kind: 'translate', direction: [0, -1] },
    down: { phrase: 'moving down', kind: 'translate', direction: [0, 1] },
    'up-left': { phrase: 'moving up and to the left', kind: 'translate', direction: [-1, -1] },
    'up-right': { phrase: 'moving up and to the right', kind: 'translate', direction: [1, -1] },
    'down-left': { phrase: 'moving down and to the left', kind: 'translate', direction: [-1, 1] },
    'down-right': { phrase: 'moving down and to the right', kind: 'translate', direction: [1, 1] },
    still: { phrase: 'staying still', kind: 'still', direction: [0, 0] },
    growing: { phrase: 'growing', kind: 'grow', direction: [0, 0] },
    shrinking: { phrase: 'shrinking', kind: 'shrink', direction: [0, 0] },
  },
  caption_template: 'a {colour} {shape} {motion} on a {background} background',
  geometry: { half_size: [8, 12], grow_half_size: [5, 13], travel: [20, 32], margin: 1 },
  max_objects: 1,
  heldout_pairs: [],
  heldout: [
    { prompt: 'a red circle moving left on a black background', shape: 'circle', colour: 'red', background: 'black', motion: 'left' },
    { prompt: 'a yellow triangle growing on a blue background', shape: 'triangle', colour: 'yellow', background: 'blue', motion: 'growing' },
  ],
};

export interface ClipSpec {
  readonly shape: Shape;
  readonly colour: Rgb;
  readonly background: Rgb;
  readonly motion: Pick<Motion, 'kind' | 'direction'>;
  readonly size?: number;
  readonly frames?: number;
  /** Path length of a translation, in pixels. */
  readonly travel?: number;
  /** Centre of the path (of the object, if it does not move), in pixels; the frame's centre by default. */
  readonly centre?: readonly [number, number];
}

/** Sub-pixel samples per axis: 4×4 = 16 coverage levels, the anti-aliasing of a typical rasteriser. */
const SUPERSAMPLE = 4;

export function renderClip(spec: ClipSpec): VideoFrames {
  const size = spec.size ?? 64;
  const count = spec.frames ?? 51;
  const frames: Uint8Array[] = [];
  for (let t = 0; t < count; t++) {
    const u = count === 1 ? 0 : t / (count - 1);
    const { cx, cy, extent } = placement(spec, size, u);
    frames.push(drawFrame(size, spec, cx, cy, extent));
  }
  return { width: size, height: size, frames };
}

/** Centre and width of the object at time u ∈ [0, 1]. */
function placement(spec: ClipSpec, size: number, u: number): { cx: number; cy: number; extent: number } {
  const [x, y] = spec.centre ?? [size / 2, size / 2];
  const { kind, direction } = spec.motion;
  if (kind === 'grow' || kind === 'shrink') {
    const [from, to] = kind === 'grow' ? [10, 26] : [26, 10];
    return { cx: x, cy: y, extent: ((from + (to - from) * u) * size) / 64 };
  }
  const travel = ((spec.travel ?? 28) * size) / 64;
  const norm = Math.hypot(direction[0], direction[1]) || 1;
  const along = (u - 0.5) * travel;
  return { cx: x + (direction[0] / norm) * along, cy: y + (direction[1] / norm) * along, extent: (20 * size) / 64 };
}

function inside(shape: Shape, px: number, py: number, cx: number, cy: number, extent: number): boolean {
  const half = extent / 2;
  switch (shape) {
    case 'circle':
      return (px - cx) ** 2 + (py - cy) ** 2 <= half * half;
    case 'square':
      return Math.abs(px - cx) <= half && Math.abs(py - cy) <= half;
    case 'triangle': {
      const top = cy - half;
      return py >= top && py <= cy + half && Math.abs(px - cx) <= ((py - top) / extent) * half;
    }
  }
}

function drawFrame(size: number, spec: ClipSpec, cx: number, cy: number, extent: number): Uint8Array {
  const frame = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let covered = 0;
      for (let sy = 0; sy < SUPERSAMPLE; sy++) {
        for (let sx = 0; sx < SUPERSAMPLE; sx++) {
          const px = x + (sx + 0.5) / SUPERSAMPLE;
          const py = y + (sy + 0.5) / SUPERSAMPLE;
          if (inside(spec.shape, px, py, cx, cy, extent)) covered++;
        }
      }
      const alpha = covered / SUPERSAMPLE ** 2;
      for (let c = 0; c < 3; c++) {
        frame[(y * size + x) * 3 + c] = Math.round(spec.background[c]! * (1 - alpha) + spec.colour[c]! * alpha);
      }
    }
  }
  return frame;
}

/** Uniformly random pixels from a fixed seed (mulberry32): what an untrained model's output looks like to the analysis. */
export function noiseClip(size: number, count: number, seed = 1): VideoFrames {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 2 ** 32;
  };
  const frames = Array.from({ length: count }, () => Uint8Array.from({ length: size * size * 3 }, () => Math.floor(next() * 256)));
  return { width: size, height: size, frames };
}
