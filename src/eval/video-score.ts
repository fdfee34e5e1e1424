/**
 * Scores one video against the attributes it should show: five pass/fail criteria (background, object colour,
 * shape, motion, temporal consistency), each with the values it was decided on, so a failure can be checked by eye.
 *
 * The criteria are strict: a shape is judged on its own geometry (a square must have equal sides and right angles,
 * a circle must be round), never on how well a template stretched to its bounding box fits it; motion is measured
 * against the world's trajectories (how far, which way, how steadily, how fast a shape grows); and a single frame
 * without the object fails consistency. Every threshold is a named constant below with the reason for its value.
 */
import { analyseVideo, median, nearestColour, sizeScale, type FrameObject, type VideoAnalysis, type VideoFrames } from './frame-analysis.js';
import type { ShapeGeometry } from './shape-geometry.js';
import { SHAPES, type Motion, type Rgb, type Shape, type VideoAttributes, type World, type WorldGeometry } from './world.js';

export const CRITERIA = ['background', 'colour', 'shape', 'motion', 'consistency'] as const;
export type Criterion = (typeof CRITERIA)[number];

/**
 * A measured colour farther than this from every palette colour is none of them: flat areas of a trained model's
 * video land within a few tens of levels of their colour (VAE and codec error), noise lands anywhere. Below the
 * closest two palette colours' distance (about 105), so it never makes the nearest colour ambiguous.
 */
const MAX_PALETTE_DISTANCE = 70;

// ---- shape, per frame whose object is whole and at least 8 px wide ----
/**
 * Most deviation of the aspect ratio from 1 (every shape of the world is as wide as it is high): 15 %. For a circle
 * and a square the ratio is that of the principal axes, so a tilted ellipse fails as an upright one does.
 */
export const MAX_ASPECT_ERROR = 0.15;
/**
 * Least soft IoU with the world's ideal shape of the same area and centroid (upright, never fitted to the object's
 * box). The world's own frames score 0.93–0.99; a circle against the square of its area scores 0.83, so a shape
 * half-way between the two passes as neither.
 */
export const MIN_TEMPLATE_IOU = 0.85;
/**
 * Most variation of a circle's radius around its centroid (standard deviation over mean of 32 rays): the world's
 * circles measure ≤ 0.03 down to 10 px wide, a square 0.11, an ellipse of aspect 1.15 about 0.05.
 */
export const MAX_CIRCLE_RADIAL_CV = 0.06;
/** Share of the measurable frames in which the expected shape must hold. */
export const MIN_SHAPE_FRAMES = 0.9;
/** At least this share of all frames must be measurable (object whole and large enough) for a shape verdict. */
const MIN_MEASURABLE_FRAMES = 0.5;

// ---- motion, against the world's geometry (world.json → geometry) ----
/** Travel of a moving shape: the world's range (20–32 px) widened by this factor either way: 15–40 px. */
export const TRAVEL_TOLERANCE = 1.25;
/** Most angle between the travel and the asked direction: half the 45° between neighbouring directions. */
export const MAX_ANGLE_ERROR_DEG = 22.5;
/** Most RMS distance (at 64 px) of the centroid from its straight, constant-speed fit: the world's is 0. */
export const MAX_TRACK_RMS = 1.5;
/** Most centroid travel (at 64 px) of a still, growing or shrinking shape (the world's centres do not move). */
export const MAX_STILL_DRIFT = 3;
/** Linear size (√area) at the end over the start, both from a straight-line fit: a still shape stays within ±20 %. */
export const STILL_SIZE_RATIO = [0.8, 1.25] as const;
/**
 * A growing shape's linear size must grow by the world's factor (half-width 5 → 13 px: 2.6×) within this factor
 * either way (2.0–3.4×); a shrinking one by its inverse.
 */
export const GROWTH_TOLERANCE = 1.3;
/** Least R² of the straight-line fit of √area over time for growing and shrinking: the world's rate is constant. */
export const MIN_GROWTH_R2 = 0.9;

// ---- consistency ----
/** The object must be found in every frame: one frame without it is a dropout the eye sees. */
export const MIN_PRESENCE = 1;
/** Most area change between consecutive frames; the world's fastest, a growing shape's first frames, is 7 %. */
export const MAX_AREA_CHANGE = 0.25;
/** Most centroid jump (at 64 px) between consecutive frames; the world's fastest shape moves 0.9 px a frame. */
export const MAX_CENTROID_JUMP = 3;

export interface ShapeFrame {
  readonly detected: Shape | null;
  readonly aspect: number;
  readonly iou: number;
  readonly radialCv: number;
}

export interface VideoScore {
  readonly frames: number;
  readonly size: { readonly width: number; readonly height: number };
  readonly threshold: number;
  readonly background: { readonly pass: boolean; readonly expected: string; readonly detected: string | null; readonly rgb: Rgb };
  readonly colour: { readonly pass: boolean; readonly expected: string; readonly detected: string | null; readonly rgb: Rgb | null };
  readonly shape: {
    readonly pass: boolean;
    readonly expected: Shape;
    /** The shape most measurable frames show, or null when none does in most of them. */
    readonly detected: Shape | null;
    /** Frames whole inside the frame and large enough to judge. */
    readonly measurable: number;
    /** Measurable frames showing each shape (meeting all of its geometry conditions). */
    readonly votes: Readonly<Record<Shape, number>>;
    /** Median over the measurable frames of the expected shape's aspect ratio (1 is exact) … */
    readonly aspect: number | null;
    /** … of the soft IoU with the expected ideal shape … */
    readonly iou: number | null;
    /** … and of the radius variation (a circle's roundness). */
    readonly radialCv: number | null;
  };
  readonly motion: {
    readonly pass: boolean;
    readonly expected: string;
    /** The expected motion when it passes; else the world's motion the track matches best, if any. */
    readonly detected: string | null;
    /** Centre travel over the clip from a straight-line fit, in pixels (y down). */
    readonly displacement: readonly [number, number] | null;
    readonly distance: number | null;
    /** Between the travel and the expected direction, for translations. */
    readonly angleErrorDeg: number | null;
    /** RMS distance of the centre from its straight-line fit, px. */
    readonly trackRms: number | null;
    /** Linear size (√area) at the end over the start, from a straight-line fit. */
    readonly sizeRatio: number | null;
    /** R² of that fit. */
    readonly sizeR2: number | null;
  };
  readonly consistency: {
    readonly pass: boolean;
    /** Share of frames with the object found. */
    readonly presence: number;
    /** Share of frame transitions whose area changes by less than MAX_AREA_CHANGE. */
    readonly steadyArea: number;
    /** Share of frame transitions whose centroid moves less than MAX_CENTROID_JUMP. */
    readonly steadyPosition: number;
    /** Share of the object's frames in which it has the video's object colour. */
    readonly steadyColour: number;
  };
  /** Criteria passed, and that over five. */
  readonly passed: number;
  readonly overall: number;
}

export function scoreVideo(video: VideoFrames, expected: VideoAttributes, world: World): VideoScore {
  return scoreAnalysis(video, analyseVideo(video, world.colours), expected, world);
}

/** The criteria an object is scored on in a two-object scene; the background is the scene's. */
export const OBJECT_CRITERIA = ['colour', 'shape', 'motion', 'consistency'] as const;

export interface PairScore {
  readonly background: VideoScore['background'];
  /** Each expected object, looked for among the pixels nearer its colour than the other's: scored on its own. */
  readonly objects: readonly [Pick<VideoScore, (typeof OBJECT_CRITERIA)[number]>, Pick<VideoScore, (typeof OBJECT_CRITERIA)[number]>];
  /** Criteria passed out of 1 + 2 × 4, and that share. */
  readonly passed: number;
  readonly overall: number;
}

/** Scores a two-object scene object by object (the two-object world): each expected colour's own object. */
export function scorePairVideo(video: VideoFrames, expected: readonly [VideoAttributes, VideoAttributes], world: World): PairScore {
  const colours = expected.map((attributes) => world.colours[attributes.colour]!);
  const scores = expected.map((attributes, i) => {
    const focus = { colour: colours[i]!, others: colours.filter((_, j) => j !== i) };
    return scoreAnalysis(video, analyseVideo(video, world.colours, focus), attributes, world);
  });
  const objects = scores.map(({ colour, shape, motion, consistency }) => ({ colour, shape, motion, consistency }));
  const passed = Number(scores[0]!.background.pass) + objects.reduce((sum, object) => sum + OBJECT_CRITERIA.filter((c) => object[c].pass).length, 0);
  const total = 1 + 2 * OBJECT_CRITERIA.length;
  return { background: scores[0]!.background, objects: [objects[0]!, objects[1]!], passed, overall: passed / total };
}

function scoreAnalysis(video: VideoFrames, analysis: VideoAnalysis, expected: VideoAttributes, world: World): VideoScore {
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
    shape: shapeScore(analysis.objects, expected.shape),
    motion: motionScore(analysis.objects, expected, world, scale),
    consistency: consistencyScore(analysis.objects, colour, background, world, scale),
  };
  const passed = CRITERIA.filter((criterion) => scores[criterion].pass).length;
  return { ...scores, passed, overall: passed / CRITERIA.length };
}

/** The nearest palette colour but `exclude`, or null when none is near (MAX_PALETTE_DISTANCE). */
function paletteName(rgb: Rgb, world: World, exclude?: string | null): string | null {
  const nearest = nearestColour(rgb, world.colours, exclude ?? undefined);
  return nearest.distance <= MAX_PALETTE_DISTANCE ? nearest.name : null;
}

/** The aspect ratio a shape is judged on: principal axes for circles and squares, width over height for triangles. */
function aspectOf(geometry: ShapeGeometry, shape: Shape): number {
  return shape === 'triangle' ? geometry.aspect.triangle : geometry.elongation;
}

/** Whether a frame's object meets every geometry condition of `shape`. */
export function showsShape(geometry: ShapeGeometry, shape: Shape): boolean {
  const aspect = aspectOf(geometry, shape);
  const best = SHAPES.reduce((a, b) => (geometry.iou[b] > geometry.iou[a] ? b : a));
  return (
    best === shape &&
    Math.abs(aspect - 1) <= MAX_ASPECT_ERROR &&
    geometry.iou[shape] >= MIN_TEMPLATE_IOU &&
    (shape !== 'circle' || geometry.radialCv <= MAX_CIRCLE_RADIAL_CV)
  );
}

export function shapeFrame(geometry: ShapeGeometry, expected: Shape): ShapeFrame {
  return {
    detected: SHAPES.find((shape) => showsShape(geometry, shape)) ?? null,
    aspect: aspectOf(geometry, expected),
    iou: geometry.iou[expected],
    radialCv: geometry.radialCv,
  };
}

function shapeScore(objects: readonly (FrameObject | null)[], expected: Shape): VideoScore['shape'] {
  const frames = objects.flatMap((object) => (object?.geometry == null ? [] : [shapeFrame(object.geometry, expected)]));
  const votes = Object.fromEntries(SHAPES.map((shape) => [shape, frames.filter((frame) => frame.detected === shape).length])) as Record<Shape, number>;
  const enough = objects.length > 0 && frames.length >= MIN_MEASURABLE_FRAMES * objects.length;
  const winner = SHAPES.reduce((a, b) => (votes[b] > votes[a] ? b : a));
  const detected = enough && votes[winner] * 2 > frames.length ? winner : null;
  const middle = (pick: (frame: ShapeFrame) => number): number | null => (frames.length === 0 ? null : median(frames.map(pick)));
  return {
    pass: enough && votes[expected] >= MIN_SHAPE_FRAMES * frames.length,
    expected,
    detected,
    measurable: frames.length,
    votes,
    aspect: middle((frame) => frame.aspect),
    iou: middle((frame) => frame.iou),
    radialCv: middle((frame) => frame.radialCv),
  };
}

interface Fit {
  /** Value at the first and the last frame. */
  readonly start: number;
  readonly end: number;
  readonly residuals: readonly number[];
  readonly r2: number;
}

/** Least-squares line through (t, value) points, evaluated at frames 0 and span. */
function fitLine(points: readonly { readonly t: number; readonly v: number }[], span: number): Fit {
  const meanT = points.reduce((sum, p) => sum + p.t, 0) / points.length;
  const meanV = points.reduce((sum, p) => sum + p.v, 0) / points.length;
  const varT = points.reduce((sum, p) => sum + (p.t - meanT) ** 2, 0);
  const slope = varT === 0 ? 0 : points.reduce((sum, p) => sum + (p.t - meanT) * (p.v - meanV), 0) / varT;
  const at = (t: number): number => meanV + slope * (t - meanT);
  const residuals = points.map((p) => p.v - at(p.t));
  const total = points.reduce((sum, p) => sum + (p.v - meanV) ** 2, 0);
  const left = residuals.reduce((sum, r) => sum + r * r, 0);
  return { start: at(0), end: at(span), residuals, r2: total === 0 ? 1 : 1 - left / total };
}

interface Track {
  readonly displacement: readonly [number, number];
  readonly distance: number;
  readonly rms: number;
  readonly sizeRatio: number;
  readonly sizeR2: number;
}

/**
 * Straight-line fits of the centre's x(t), y(t) and the linear size √area(t). The centre is the centroid, but for
 * a triangle the centre of its box: the world grows a triangle about that point, and its centroid, a sixth of the
 * height below it, would drift as it grows.
 */
function measureTrack(objects: readonly (FrameObject | null)[], shape: Shape): Track | null {
  const points = objects.flatMap((object, t) => {
    if (object === null) return [];
    const lift = shape === 'triangle' ? Math.sqrt(2 * object.area) / 6 : 0;
    return [{ t, x: object.centroid[0], y: object.centroid[1] - lift, size: Math.sqrt(object.area) }];
  });
  if (points.length < 2) return null;
  const span = objects.length - 1;
  const x = fitLine(points.map((p) => ({ t: p.t, v: p.x })), span);
  const y = fitLine(points.map((p) => ({ t: p.t, v: p.y })), span);
  const size = fitLine(points.map((p) => ({ t: p.t, v: p.size })), span);
  const displacement = [x.end - x.start, y.end - y.start] as const;
  const rms = Math.sqrt(x.residuals.reduce((sum, r, i) => sum + r * r + y.residuals[i]! ** 2, 0) / points.length);
  return {
    displacement,
    distance: Math.hypot(...displacement),
    rms,
    sizeRatio: size.start > 0 && size.end > 0 ? size.end / size.start : size.end > size.start ? Infinity : 0,
    sizeR2: size.r2,
  };
}

function angleBetween(a: readonly [number, number], b: readonly [number, number]): number {
  const cosine = (a[0] * b[0] + a[1] * b[1]) / (Math.hypot(...a) * Math.hypot(...b));
  return (Math.acos(Math.min(1, Math.max(-1, cosine))) * 180) / Math.PI;
}

function within(value: number, [low, high]: readonly [number, number]): boolean {
  return value >= low && value <= high;
}

/** Whether the track shows `motion` as the world draws it, pixel limits scaled to the frame. */
function showsMotion(motion: Motion, track: Track, geometry: WorldGeometry, scale: number): boolean {
  const still = track.distance <= MAX_STILL_DRIFT * scale;
  const growth = geometry.grow_half_size[1] / geometry.grow_half_size[0];
  const growing = [growth / GROWTH_TOLERANCE, growth * GROWTH_TOLERANCE] as const;
  switch (motion.kind) {
    case 'translate': {
      const travel = [(geometry.travel[0] / TRAVEL_TOLERANCE) * scale, geometry.travel[1] * TRAVEL_TOLERANCE * scale] as const;
      return (
        within(track.distance, travel) &&
        angleBetween(track.displacement, motion.direction) <= MAX_ANGLE_ERROR_DEG &&
        track.rms <= MAX_TRACK_RMS * scale &&
        within(track.sizeRatio, STILL_SIZE_RATIO)
      );
    }
    case 'still':
      return still && within(track.sizeRatio, STILL_SIZE_RATIO);
    case 'grow':
      return still && within(track.sizeRatio, growing) && track.sizeR2 >= MIN_GROWTH_R2;
    case 'shrink':
      return still && within(1 / track.sizeRatio, growing) && track.sizeR2 >= MIN_GROWTH_R2;
  }
}

function motionScore(objects: readonly (FrameObject | null)[], expected: VideoAttributes, world: World, scale: number): VideoScore['motion'] {
  const motion = world.motions[expected.motion]!;
  const track = measureTrack(objects, expected.shape);
  const angleErrorDeg = track === null || motion.kind !== 'translate' || track.distance === 0 ? null : angleBetween(track.displacement, motion.direction);
  const pass = track !== null && showsMotion(motion, track, world.geometry, scale);
  return {
    pass,
    expected: expected.motion,
    detected: pass ? expected.motion : track === null ? null : bestOtherMotion(track, world, scale),
    displacement: track?.displacement ?? null,
    distance: track?.distance ?? null,
    angleErrorDeg,
    trackRms: track?.rms ?? null,
    sizeRatio: track === null || !Number.isFinite(track.sizeRatio) ? null : track.sizeRatio,
    sizeR2: track?.sizeR2 ?? null,
  };
}

/** Of the world's motions the track shows, the one closest in direction (translations) or the only one. */
function bestOtherMotion(track: Track, world: World, scale: number): string | null {
  const shown = Object.entries(world.motions).filter(([, motion]) => showsMotion(motion, track, world.geometry, scale));
  const offBy = ([, motion]: [string, Motion]): number => (motion.kind === 'translate' ? angleBetween(track.displacement, motion.direction) : 0);
  return shown.sort((a, b) => offBy(a) - offBy(b))[0]?.[0] ?? null;
}

function consistencyScore(
  objects: readonly (FrameObject | null)[],
  colour: string | null,
  background: string | null,
  world: World,
  scale: number,
): VideoScore['consistency'] {
  const found = objects.filter((object): object is FrameObject => object !== null);
  const presence = objects.length === 0 ? 0 : found.length / objects.length;
  let steadyArea = 0;
  let steadyPosition = 0;
  for (let t = 1; t < objects.length; t++) {
    const before = objects[t - 1];
    const after = objects[t];
    if (!before || !after) continue;
    if (Math.abs(after.area - before.area) / before.area < MAX_AREA_CHANGE) steadyArea++;
    if (Math.hypot(after.centroid[0] - before.centroid[0], after.centroid[1] - before.centroid[1]) < MAX_CENTROID_JUMP * scale) steadyPosition++;
  }
  const transitions = Math.max(1, objects.length - 1);
  const sameColour = found.filter((object) => paletteName(object.colour, world, background) === colour).length;
  const steadyColour = found.length === 0 || colour === null ? 0 : sameColour / found.length;
  return {
    pass: objects.length > 1 && presence >= MIN_PRESENCE && steadyArea === transitions && steadyPosition === transitions && steadyColour === 1,
    presence,
    steadyArea: steadyArea / transitions,
    steadyPosition: steadyPosition / transitions,
    steadyColour,
  };
}
