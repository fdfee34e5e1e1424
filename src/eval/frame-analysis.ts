/**
 * Plain image analysis of a shapes-world video: the background from the frame border, the object as the largest
 * connected region that differs from it, and per frame the object's area, box, centroid, colour and geometry
 * (shape-geometry.ts). No learned model: every number here can be checked by looking at the frames.
 *
 * Sizes are tuned for the world's 64-pixel frames (REFERENCE_SIZE) and scaled with the frame for other sizes.
 */
import { measureGeometry, momentsOf, softCoverage, type ShapeGeometry } from './shape-geometry.js';
import type { Rgb } from './world.js';

/** Packed RGB24 frames of one video (row-major, 3 bytes per pixel). */
export interface VideoFrames {
  readonly width: number;
  readonly height: number;
  readonly frames: readonly Uint8Array[];
}

export type Palette = Readonly<Record<string, Rgb>>;

/** Inclusive pixel bounds. */
export interface Box {
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
}

export interface FrameObject {
  /** Pixels of the region (foreground by the threshold). */
  readonly pixels: number;
  /** Area from the soft coverage of the region and its rim, in pixels: sub-pixel, and what sizes are judged on. */
  readonly area: number;
  readonly box: Box;
  /** Coverage-weighted centre, in pixels (pixel centres at +0.5). */
  readonly centroid: readonly [number, number];
  /** Median colour of the object's inner pixels (its anti-aliased rim left out where the object is thick enough). */
  readonly colour: Rgb;
  readonly touchesBorder: boolean;
  /** Null when the object touches the border (its outline is cut) or is too small to tell shapes apart. */
  readonly geometry: ShapeGeometry | null;
}

export interface VideoAnalysis {
  /** Median colour of the border ring over all frames. */
  readonly background: Rgb;
  /** Colour distance above which a pixel belongs to the foreground. */
  readonly threshold: number;
  /** The object of each frame, or null where none was found. */
  readonly objects: readonly (FrameObject | null)[];
}

/** The frame size the pixel constants below are chosen for: the shapes world's 64×64. */
export const REFERENCE_SIZE = 64;
/** Border ring read for the background: two pixels, so one anti-aliased edge row of an object at the border does not dominate. */
const BORDER_RING = 2;
/**
 * Upper bound of the foreground threshold: far above the few levels of codec and model noise on a flat background,
 * well below the distance of any two palette colours the world uses.
 */
const MAX_THRESHOLD = 60;
/** Regions smaller than this (at 64 px) are specks of noise, not the object (the smallest object is about 10 px wide). */
const MIN_OBJECT_PIXELS = 6;
/** A region covering more than this fraction of the frame is not one object on a background (noise, a wrong background). */
const MAX_OBJECT_FRACTION = 0.4;
/** A triangle fills half its box; a region filling much less is a scatter of noise, not a flat shape. */
const MIN_FILL = 0.3;
/** Narrower than this (at 64 px) a few pixels of anti-aliasing decide the shape: such frames do not vote. */
const MIN_SHAPE_WIDTH = 8;

export function sizeScale(width: number, height: number): number {
  return Math.min(width, height) / REFERENCE_SIZE;
}

export function colourDistance(a: Rgb, b: Rgb): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/** The palette colour closest to `rgb` (Euclidean RGB), leaving out `exclude`. */
export function nearestColour(rgb: Rgb, palette: Palette, exclude?: string): { readonly name: string; readonly distance: number } {
  let best = { name: '', distance: Infinity };
  for (const [name, colour] of Object.entries(palette)) {
    if (name === exclude) continue;
    const distance = colourDistance(rgb, colour);
    if (distance < best.distance) best = { name, distance };
  }
  return best;
}

/**
 * One object among several of different colours (the two-object world): only pixels nearer `colour` than every
 * colour of `others` can be this object.
 */
export interface Focus {
  readonly colour: Rgb;
  readonly others: readonly Rgb[];
}

export function analyseVideo(video: VideoFrames, palette: Palette, focus?: Focus): VideoAnalysis {
  const background = borderColour(video);
  const threshold = foregroundThreshold(background, palette);
  const objects = video.frames.map((frame) => findObject(frame, video.width, video.height, background, threshold, focus));
  return { background, threshold, objects };
}

/** Per-channel median of the border ring of every frame (histograms: exact and linear in the pixel count). */
export function borderColour({ width, height, frames }: VideoFrames): Rgb {
  const histograms = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)] as const;
  let count = 0;
  for (const frame of frames) {
    for (let y = 0; y < height; y++) {
      const edgeRow = y < BORDER_RING || y >= height - BORDER_RING;
      for (let x = 0; x < width; x++) {
        if (!edgeRow && x >= BORDER_RING && x < width - BORDER_RING) continue;
        const p = (y * width + x) * 3;
        for (let c = 0; c < 3; c++) histograms[c]![frame[p + c]!]!++;
        count++;
      }
    }
  }
  return [histogramMedian(histograms[0], count), histogramMedian(histograms[1], count), histogramMedian(histograms[2], count)];
}

function histogramMedian(histogram: Uint32Array, count: number): number {
  let seen = 0;
  for (let value = 0; value < histogram.length; value++) {
    seen += histogram[value]!;
    if (seen * 2 >= count) return value;
  }
  return histogram.length - 1;
}

/**
 * Half the distance from the background to the closest other palette colour, so an object of that colour is still
 * found and the blend of its rim is counted when it is at least half object; capped by MAX_THRESHOLD.
 */
export function foregroundThreshold(background: Rgb, palette: Palette): number {
  const own = nearestColour(background, palette).name;
  const other = nearestColour(background, palette, own).distance;
  return Math.min(MAX_THRESHOLD, other / 2);
}

/** The largest 4-connected foreground region that looks like one flat object (of the focus colour, if any), or null. */
export function findObject(
  frame: Uint8Array,
  width: number,
  height: number,
  background: Rgb,
  threshold: number,
  focus?: Focus,
): FrameObject | null {
  const pixels = width * height;
  const foreground = new Uint8Array(pixels);
  const limit = threshold * threshold;
  for (let i = 0; i < pixels; i++) {
    const rgb: Rgb = [frame[i * 3]!, frame[i * 3 + 1]!, frame[i * 3 + 2]!];
    const differs = colourDistance(rgb, background) ** 2 > limit;
    foreground[i] = differs && (focus === undefined || isNearest(rgb, focus)) ? 1 : 0;
  }
  const region = largestRegion(foreground, width);
  const scale = sizeScale(width, height);
  if (region === null || region.pixels.length < MIN_OBJECT_PIXELS * scale * scale) return null;
  if (region.pixels.length > MAX_OBJECT_FRACTION * pixels) return null;
  const box = boundingBox(region.pixels, width);
  const boxArea = (box.x1 - box.x0 + 1) * (box.y1 - box.y0 + 1);
  if (region.pixels.length / boxArea < MIN_FILL) return null;

  const touchesBorder = box.x0 === 0 || box.y0 === 0 || box.x1 === width - 1 || box.y1 === height - 1;
  const measurable = !touchesBorder && box.x1 - box.x0 + 1 >= MIN_SHAPE_WIDTH * scale;
  const colour = innerColour(frame, region, width);
  const coverage = softCoverage(frame, dilate(region.member, width, height), background, colour);
  const moments = momentsOf(coverage, width);
  return {
    pixels: region.pixels.length,
    area: moments.area,
    box,
    centroid: moments.centroid,
    colour,
    touchesBorder,
    geometry: measurable ? measureGeometry(coverage, width, height) : null,
  };
}

function isNearest(rgb: Rgb, focus: Focus): boolean {
  const own = colourDistance(rgb, focus.colour);
  return focus.others.every((other) => own < colourDistance(rgb, other));
}

/** The mask grown by one pixel (8-neighbourhood): the rim pixels an object covers by less than the threshold. */
function dilate(member: Uint8Array, width: number, height: number): Uint8Array {
  const grown = new Uint8Array(member.length);
  for (let p = 0; p < member.length; p++) {
    if (member[p] === 0) continue;
    const x = p % width;
    const y = (p - x) / width;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx;
        const ny = y + dy;
        if (nx >= 0 && ny >= 0 && nx < width && ny < height) grown[ny * width + nx] = 1;
      }
    }
  }
  return grown;
}

interface Region {
  /** Pixel indices. */
  readonly pixels: Int32Array;
  /** 1 where the pixel is in the region. */
  readonly member: Uint8Array;
}

function largestRegion(foreground: Uint8Array, width: number): Region | null {
  const label = new Int32Array(foreground.length).fill(-1);
  const queue = new Int32Array(foreground.length);
  let best: { id: number; size: number } | null = null;
  let id = 0;
  for (let start = 0; start < foreground.length; start++) {
    if (foreground[start] === 0 || label[start] !== -1) continue;
    let head = 0;
    let tail = 0;
    queue[tail++] = start;
    label[start] = id;
    while (head < tail) {
      const p = queue[head++]!;
      const x = p % width;
      const neighbours = [x > 0 ? p - 1 : -1, x < width - 1 ? p + 1 : -1, p - width, p + width];
      for (const q of neighbours) {
        if (q < 0 || q >= foreground.length || foreground[q] === 0 || label[q] !== -1) continue;
        label[q] = id;
        queue[tail++] = q;
      }
    }
    if (best === null || tail > best.size) best = { id, size: tail };
    id++;
  }
  if (best === null) return null;
  const pixels = new Int32Array(best.size);
  const member = new Uint8Array(foreground.length);
  let n = 0;
  for (let p = 0; p < label.length; p++) {
    if (label[p] !== best.id) continue;
    pixels[n++] = p;
    member[p] = 1;
  }
  return { pixels, member };
}

function boundingBox(pixels: Int32Array, width: number): Box {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const p of pixels) {
    const x = p % width;
    const y = (p - x) / width;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  return { x0, y0, x1, y1 };
}

/** Median colour of the pixels whose four neighbours are all in the region (all of them if none is). */
function innerColour(frame: Uint8Array, region: Region, width: number): Rgb {
  const { pixels, member } = region;
  const inner = pixels.filter((p) => {
    const x = p % width;
    return x > 0 && x < width - 1 && member[p - 1] === 1 && member[p + 1] === 1 && member[p - width] === 1 && member[p + width] === 1;
  });
  const chosen = inner.length > 0 ? inner : pixels;
  const channel = (c: number): number => median(Array.from(chosen, (p) => frame[p * 3 + c]!));
  return [channel(0), channel(1), channel(2)];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
