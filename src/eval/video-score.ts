/**
 * Scores one video against the attributes it should show: five pass/fail criteria (background, object colour,
 * shape, motion, temporal consistency), each with the values it was decided on, so a failure can be checked by eye.
 */
import { analyseVideo, median, nearestColour, sizeScale, type FrameObject, type VideoFrames } from './frame-analysis.js';
import { SHAPES, type Motion, type Rgb, type Shape, type VideoAttributes, type World } from './world.js';

export const CRITERIA = ['background', 'colour', 'shape', 'motion', 'consistency'] as const;
export type Criterion = (typeof CRITERIA)[number];

/**
 * A measured colour farther than this from every palette colour is none of them: flat areas of a trained model's
 * video land within a few tens of levels of their colour (VAE and codec error), noise lands anywhere. Below the
 * closest two palette colours' distance (about 105), so it never makes the nearest colour ambiguous.
 */
const MAX_PALETTE_DISTANCE = 70;
/** A frame whose best template overlaps the object less than this shows no recognisable shape and does not vote. */
const MIN_SHAPE_IOU = 0.6;
/** Least centroid travel (at 64 px) that counts as moving: a quarter of the world's shortest path (20–36 px). */
const MIN_TRANSLATION = 8;
/** Most angle between the travel and the asked direction: the eight directions are 45° apart. */
const MAX_ANGLE_ERROR_DEG = 30;
/** Most centroid travel (at 64 px) of a still object: a couple of pixels of wobble from a blurry rim are fine. */
const MAX_STILL_DRIFT = 4;
/** Area change a still object may show (last quarter over first): rim noise, not growth (10 → 26 px is 6.8×). */
const STILL_AREA_RATIO = [0.75, 1.33] as const;
/** Area growth (last quarter over first) of a growing object; a shrinking one shows the inverse. */
const GROW_AREA_RATIO = 1.5;
const SHRINK_AREA_RATIO = 0.67;
/** Most centroid travel (at 64 px) of a growing or shrinking object, which should stay in place. */
const MAX_SCALING_DRIFT = 8;
/** The object must be there in nearly every frame: a missing frame is a dropout the eye sees. */
const MIN_PRESENCE = 0.95;
/** Frame-to-frame area change above this is a flicker; growing 10 → 26 px over 51 frames is about 4 % per frame. */
const MAX_AREA_CHANGE = 0.35;
const MIN_STEADY_AREA = 0.95;
/** The object keeps its palette colour in this share of the frames it is in. */
const MIN_STEADY_COLOUR = 0.9;

export interface VideoScore {
  readonly frames: number;
  readonly size: { readonly width: number; readonly height: number };
  readonly threshold: number;
  readonly background: { readonly pass: boolean; readonly expected: string; readonly detected: string | null; readonly rgb: Rgb };
  readonly colour: { readonly pass: boolean; readonly expected: string; readonly detected: string | null; readonly rgb: Rgb | null };
  readonly shape: {
    readonly pass: boolean;
    readonly expected: Shape;
    readonly detected: Shape | null;
    /** Frames that voted for each shape: those with the whole object inside the frame and a template that fits. */
    readonly votes: Readonly<Record<Shape, number>>;
    /** Mean IoU of the voting frames with the expected shape's template. */
    readonly meanIou: number | null;
    readonly meanFill: number | null;
  };
  readonly motion: {
    readonly pass: boolean;
    readonly expected: string;
    /** The expected motion when it passes; else the world's motion the track matches best, if any. */
    readonly detected: string | null;
    /** Centroid travel over the clip from a straight-line fit, in pixels (y down). */
    readonly displacement: readonly [number, number] | null;
    readonly distance: number | null;
    /** Between the travel and the expected direction, for translations. */
    readonly angleErrorDeg: number | null;
    /** Mean area of the last quarter of the frames over that of the first. */
    readonly areaRatio: number | null;
  };
  readonly consistency: {
    readonly pass: boolean;
    /** Share of frames with the object found. */
    readonly presence: number;
    /** Share of frame transitions whose area changes by less than MAX_AREA_CHANGE. */
    readonly steadyArea: number;
    /** Share of the object's frames in which it has the video's object colour. */
    readonly steadyColour: number;
  };
  /** Criteria passed, and that over five. */
  readonly passed: number;
  readonly overall: number;
}

export function scoreVideo(video: VideoFrames, expected: VideoAttributes, world: World): VideoScore {
  const analysis = analyseVideo(video, world.colours);
  const background = paletteName(analysis.background, world);
  const found = analysis.objects.filter((object): object is FrameObject => object !== null);
  const channel = (c: number): number => median(found.map((object) => object.colour[c]!));
  const objectRgb: Rgb | null = found.length === 0 ? null : [channel(0), channel(1), channel(2)];
  const colour = objectRgb === null ? null : paletteName(objectRgb, world, background);
  const scale = sizeScale(video.width, video.height);

  const scores = {
    frames: video.frames.length,
    size: { width: video.width, height: video.height },
    threshold: analysis.threshold,
    background: { pass: background === expected.background, expected: expected.background, detected: background, rgb: analysis.background },
    colour: { pass: colour === expected.colour, expected: expected.colour, detected: colour, rgb: objectRgb },
    shape: shapeScore(found, expected.shape),
    motion: motionScore(analysis.objects, expected.motion, world, scale),
    consistency: consistencyScore(analysis.objects, colour, background, world),
  };
  const passed = CRITERIA.filter((criterion) => scores[criterion].pass).length;
  return { ...scores, passed, overall: passed / CRITERIA.length };
}

/** The nearest palette colour but `exclude`, or null when none is near (MAX_PALETTE_DISTANCE). */
function paletteName(rgb: Rgb, world: World, exclude?: string | null): string | null {
  const nearest = nearestColour(rgb, world.colours, exclude ?? undefined);
  return nearest.distance <= MAX_PALETTE_DISTANCE ? nearest.name : null;
}

function shapeScore(found: readonly FrameObject[], expected: Shape): VideoScore['shape'] {
  const fits = found.flatMap((object) => (object.shape === null || object.shape.iou[object.shape.best] < MIN_SHAPE_IOU ? [] : [object.shape]));
  const votes = Object.fromEntries(SHAPES.map((shape) => [shape, fits.filter((fit) => fit.best === shape).length])) as Record<Shape, number>;
  const winner = SHAPES.reduce((a, b) => (votes[b] > votes[a] ? b : a));
  // A tie is no majority.
  const detected = fits.length === 0 || SHAPES.some((shape) => shape !== winner && votes[shape] === votes[winner]) ? null : winner;
  const mean = (values: readonly number[]): number | null => (values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length);
  return {
    pass: detected === expected,
    expected,
    detected,
    votes,
    meanIou: mean(fits.map((fit) => fit.iou[expected])),
    meanFill: mean(fits.map((fit) => fit.fill)),
  };
}

interface Track {
  readonly displacement: readonly [number, number];
  readonly distance: number;
  readonly areaRatio: number | null;
}

/** Least-squares lines through the centroid's x(t) and y(t); displacement = slope × (frames − 1). */
function measureTrack(objects: readonly (FrameObject | null)[]): Track | null {
  const points = objects.flatMap((object, t) => (object === null ? [] : [{ t, x: object.centroid[0], y: object.centroid[1] }]));
  if (points.length < 2) return null;
  const meanT = points.reduce((sum, p) => sum + p.t, 0) / points.length;
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / points.length;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / points.length;
  const varT = points.reduce((sum, p) => sum + (p.t - meanT) ** 2, 0);
  const slopeX = points.reduce((sum, p) => sum + (p.t - meanT) * (p.x - meanX), 0) / varT;
  const slopeY = points.reduce((sum, p) => sum + (p.t - meanT) * (p.y - meanY), 0) / varT;
  const span = objects.length - 1;
  const displacement = [slopeX * span, slopeY * span] as const;
  return { displacement, distance: Math.hypot(...displacement), areaRatio: quarterAreaRatio(objects) };
}

function quarterAreaRatio(objects: readonly (FrameObject | null)[]): number | null {
  const quarter = Math.max(1, Math.floor(objects.length / 4));
  const meanArea = (part: readonly (FrameObject | null)[]): number | null => {
    const areas = part.flatMap((object) => (object === null ? [] : [object.area]));
    return areas.length === 0 ? null : areas.reduce((a, b) => a + b, 0) / areas.length;
  };
  const first = meanArea(objects.slice(0, quarter));
  const last = meanArea(objects.slice(objects.length - quarter));
  return first === null || last === null ? null : last / first;
}

function angleBetween(a: readonly [number, number], b: readonly [number, number]): number {
  const cosine = (a[0] * b[0] + a[1] * b[1]) / (Math.hypot(...a) * Math.hypot(...b));
  return (Math.acos(Math.min(1, Math.max(-1, cosine))) * 180) / Math.PI;
}

/** Whether the track shows `motion`, pixel limits scaled to the frame. */
function showsMotion(motion: Motion, track: Track, scale: number): boolean {
  const ratio = track.areaRatio;
  switch (motion.kind) {
    case 'translate':
      return track.distance >= MIN_TRANSLATION * scale && angleBetween(track.displacement, motion.direction) <= MAX_ANGLE_ERROR_DEG;
    case 'still':
      return track.distance < MAX_STILL_DRIFT * scale && ratio !== null && ratio >= STILL_AREA_RATIO[0] && ratio <= STILL_AREA_RATIO[1];
    case 'grow':
      return track.distance < MAX_SCALING_DRIFT * scale && ratio !== null && ratio > GROW_AREA_RATIO;
    case 'shrink':
      return track.distance < MAX_SCALING_DRIFT * scale && ratio !== null && ratio < SHRINK_AREA_RATIO;
  }
}

function motionScore(objects: readonly (FrameObject | null)[], expected: string, world: World, scale: number): VideoScore['motion'] {
  const motion = world.motions[expected]!;
  const track = measureTrack(objects);
  const angleErrorDeg = track === null || motion.kind !== 'translate' || track.distance === 0 ? null : angleBetween(track.displacement, motion.direction);
  const pass = track !== null && showsMotion(motion, track, scale);
  return {
    pass,
    expected,
    detected: pass ? expected : track === null ? null : bestOtherMotion(track, world, scale),
    displacement: track?.displacement ?? null,
    distance: track?.distance ?? null,
    angleErrorDeg,
    areaRatio: track?.areaRatio ?? null,
  };
}

/** Of the world's motions the track shows, the one closest in direction (translations) or the only one. */
function bestOtherMotion(track: Track, world: World, scale: number): string | null {
  const shown = Object.entries(world.motions).filter(([, motion]) => showsMotion(motion, track, scale));
  const offBy = ([, motion]: [string, Motion]): number => (motion.kind === 'translate' ? angleBetween(track.displacement, motion.direction) : 0);
  return shown.sort((a, b) => offBy(a) - offBy(b))[0]?.[0] ?? null;
}

function consistencyScore(
  objects: readonly (FrameObject | null)[],
  colour: string | null,
  background: string | null,
  world: World,
): VideoScore['consistency'] {
  const found = objects.filter((object): object is FrameObject => object !== null);
  const presence = objects.length === 0 ? 0 : found.length / objects.length;
  let steadyTransitions = 0;
  for (let t = 1; t < objects.length; t++) {
    const before = objects[t - 1];
    const after = objects[t];
    if (before && after && Math.abs(after.area - before.area) / before.area < MAX_AREA_CHANGE) steadyTransitions++;
  }
  const steadyArea = objects.length < 2 ? 0 : steadyTransitions / (objects.length - 1);
  const sameColour = found.filter((object) => paletteName(object.colour, world, background) === colour).length;
  const steadyColour = found.length === 0 || colour === null ? 0 : sameColour / found.length;
  return {
    pass: presence >= MIN_PRESENCE && steadyArea >= MIN_STEADY_AREA && steadyColour >= MIN_STEADY_COLOUR,
    presence,
    steadyArea,
    steadyColour,
  };
}
