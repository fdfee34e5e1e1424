/**
 * The geometry of one found object, measured on its soft coverage (how much of each pixel is object colour rather
 * than background), so an anti-aliased or blurred edge counts by how much it covers and sizes are sub-pixel:
 * area, centroid and second moments; how elongated it is; how well it overlaps each of the world's ideal shapes
 * (drawn as the world draws them: upright, with the object's own area and centroid, never stretched to its box);
 * and how much its radius varies around the centroid.
 */
import { SHAPES, type Rgb, type Shape } from './world.js';

export interface Moments {
  /** Σ coverage: the area in pixels. */
  readonly area: number;
  readonly centroid: readonly [number, number];
  /** Central second moments per unit area (px²): variance along x, along y, and their covariance (y down). */
  readonly xx: number;
  readonly yy: number;
  readonly xy: number;
}

export interface ShapeGeometry extends Moments {
  /** √(λmax / λmin) of the second moments: 1 for a circle or a square of any size, 1.4 for one stretched 1.4×. */
  readonly elongation: number;
  /**
   * Width over height from the moments as the expected-shape formulas give them (a square's side is √(12·var), a
   * circle's diameter 4·√var, an upright triangle of equal width and height has width √(24·var x) and height
   * √(18·var y)): 1 for every shape of the world, whatever its size.
   */
  readonly aspect: Readonly<Record<Shape, number>>;
  /** IoU of the half-coverage outline with each ideal shape of the same area and centroid, upright as the world draws it. */
  readonly iou: Readonly<Record<Shape, number>>;
  /** Standard deviation over mean of the half-coverage radius along RAYS rays from the centroid: ≈0 for a circle, ≈0.11 for a square. */
  readonly radialCv: number;
}

/** Rays for the radial profile: every 11.25°. */
const RAYS = 32;
/** Steps along a ray, in pixels. */
const RAY_STEP = 0.25;
/** Template sub-pixel samples per axis (the world renders with 4×4). */
const TEMPLATE_SUPERSAMPLE = 4;

/** Moments' width/height formulas per shape (see ShapeGeometry.aspect): [k_x, k_y] with size = √(k·variance). */
const SIZE_FROM_VARIANCE: Readonly<Record<Shape, readonly [number, number]>> = {
  circle: [16, 16],
  square: [12, 12],
  triangle: [24, 18],
};

/**
 * Coverage of each pixel between the background and the object colour: the pixel's colour projected on the line
 * from one to the other, clamped to [0, 1]. Only the pixels of `within` count (the object's region and its rim),
 * so other specks in the frame add nothing.
 */
export function softCoverage(frame: Uint8Array, within: Uint8Array, background: Rgb, object: Rgb): Float32Array {
  const coverage = new Float32Array(within.length);
  const d = [object[0] - background[0], object[1] - background[1], object[2] - background[2]] as const;
  const norm = Math.max(1, d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
  for (let p = 0; p < within.length; p++) {
    if (within[p] === 0) continue;
    const dot =
      (frame[p * 3]! - background[0]) * d[0] + (frame[p * 3 + 1]! - background[1]) * d[1] + (frame[p * 3 + 2]! - background[2]) * d[2];
    coverage[p] = Math.min(1, Math.max(0, dot / norm));
  }
  return coverage;
}

export function momentsOf(coverage: Float32Array, width: number): Moments {
  let area = 0;
  let sx = 0;
  let sy = 0;
  for (let p = 0; p < coverage.length; p++) {
    const a = coverage[p]!;
    if (a === 0) continue;
    const x = (p % width) + 0.5;
    const y = Math.floor(p / width) + 0.5;
    area += a;
    sx += a * x;
    sy += a * y;
  }
  const cx = sx / area;
  const cy = sy / area;
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let p = 0; p < coverage.length; p++) {
    const a = coverage[p]!;
    if (a === 0) continue;
    const dx = (p % width) + 0.5 - cx;
    const dy = Math.floor(p / width) + 0.5 - cy;
    xx += a * dx * dx;
    yy += a * dy * dy;
    xy += a * dx * dy;
  }
  // A pixel's own extent adds 1/12 px² to each variance; without it a 10-px square would measure 1 % small.
  return { area, centroid: [cx, cy], xx: xx / area + 1 / 12, yy: yy / area + 1 / 12, xy: xy / area };
}

export function measureGeometry(coverage: Float32Array, width: number, height: number): ShapeGeometry {
  const moments = momentsOf(coverage, width);
  const { xx, yy, xy } = moments;
  const spread = Math.sqrt(((xx - yy) / 2) ** 2 + xy * xy);
  const major = (xx + yy) / 2 + spread;
  const minor = Math.max((xx + yy) / 2 - spread, 1e-9);
  const aspect = {} as Record<Shape, number>;
  const iou = {} as Record<Shape, number>;
  const outline = outlineOf(coverage, width, height, moments);
  for (const shape of SHAPES) {
    const [kx, ky] = SIZE_FROM_VARIANCE[shape];
    aspect[shape] = Math.sqrt(kx * xx) / Math.sqrt(ky * yy);
    iou[shape] = templateIou(outline, shape, moments);
  }
  return { ...moments, elongation: Math.sqrt(major / minor), aspect, iou, radialCv: radialCv(coverage, width, height, moments.centroid) };
}

/** Whether a point is inside the world's `shape` whose area is `area` and whose centroid is (cx, cy). */
function templateTest(shape: Shape, area: number, cx: number, cy: number): { readonly inside: (x: number, y: number) => boolean } {
  switch (shape) {
    case 'circle': {
      const r = Math.sqrt(area / Math.PI);
      return { inside: (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r };
    }
    case 'square': {
      const half = Math.sqrt(area) / 2;
      return { inside: (x, y) => Math.abs(x - cx) <= half && Math.abs(y - cy) <= half };
    }
    case 'triangle': {
      // Apex up, width = height = s (area s²/2); the centroid lies 2/3 of the height below the apex.
      const s = Math.sqrt(2 * area);
      const top = cy - (2 * s) / 3;
      return { inside: (x, y) => y >= top && y <= top + s && Math.abs(x - cx) <= (y - top) / 2 };
    }
  }
}

/**
 * The object's outline at half coverage, sampled TEMPLATE_SUPERSAMPLE² times a pixel (coverage interpolated
 * bilinearly) over a window around the centroid wide enough for every template. That outline is where a straight
 * edge stays however much a decoder blurs it, so blur costs only the corners it rounds.
 */
interface Outline {
  readonly x0: number;
  readonly y0: number;
  /** Window size in samples. */
  readonly columns: number;
  readonly rows: number;
  readonly inside: Uint8Array;
  /** Samples inside the outline but outside the window (whole pixels of at least half coverage). */
  readonly beyond: number;
}

function outlineOf(coverage: Float32Array, width: number, height: number, moments: Moments): Outline {
  const [cx, cy] = moments.centroid;
  // The triangle's apex, 2/3 of its side √(2·area) above the centroid, is the farthest any template reaches.
  const reach = 0.95 * Math.sqrt(moments.area) + 1;
  const x0 = Math.max(0, Math.floor(cx - reach));
  const x1 = Math.min(width - 1, Math.ceil(cx + reach));
  const y0 = Math.max(0, Math.floor(cy - reach));
  const y1 = Math.min(height - 1, Math.ceil(cy + reach));
  const n = TEMPLATE_SUPERSAMPLE;
  const columns = (x1 - x0 + 1) * n;
  const rows = (y1 - y0 + 1) * n;
  const inside = new Uint8Array(columns * rows);
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      // A pixel with no coverage around it has none inside it either: most of the window, skipped.
      if (!coveredNear(coverage, width, height, x, y)) continue;
      for (let sy = 0; sy < n; sy++) {
        for (let sx = 0; sx < n; sx++) {
          const value = sample(coverage, width, height, x + (sx + 0.5) / n, y + (sy + 0.5) / n);
          inside[((y - y0) * n + sy) * columns + (x - x0) * n + sx] = value >= 0.5 ? 1 : 0;
        }
      }
    }
  }
  let beyond = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if ((x < x0 || x > x1 || y < y0 || y > y1) && coverage[y * width + x]! >= 0.5) beyond += n * n;
    }
  }
  return { x0, y0, columns, rows, inside, beyond };
}

/** IoU of the outline with the world's `shape` of the object's area and centroid, sampled alike. */
function templateIou(outline: Outline, shape: Shape, moments: Moments): number {
  const { inside: test } = templateTest(shape, moments.area, moments.centroid[0], moments.centroid[1]);
  const n = TEMPLATE_SUPERSAMPLE;
  let intersection = 0;
  let union = outline.beyond;
  for (let row = 0; row < outline.rows; row++) {
    for (let column = 0; column < outline.columns; column++) {
      const object = outline.inside[row * outline.columns + column] === 1;
      const template = test(outline.x0 + (column + 0.5) / n, outline.y0 + (row + 0.5) / n);
      if (object && template) intersection++;
      if (object || template) union++;
    }
  }
  return union === 0 ? 0 : intersection / union;
}

function coveredNear(coverage: Float32Array, width: number, height: number, x: number, y: number): boolean {
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      const nx = x + dx;
      const ny = y + dy;
      if (nx >= 0 && ny >= 0 && nx < width && ny < height && coverage[ny * width + nx]! > 0) return true;
    }
  }
  return false;
}

/** Bilinear coverage at a point (pixel centres at +0.5); 0 outside the frame. */
function sample(coverage: Float32Array, width: number, height: number, x: number, y: number): number {
  const fx = x - 0.5;
  const fy = y - 0.5;
  const x0 = Math.floor(fx);
  const y0 = Math.floor(fy);
  const tx = fx - x0;
  const ty = fy - y0;
  let value = 0;
  for (let dy = 0; dy <= 1; dy++) {
    const py = y0 + dy;
    if (py < 0 || py >= height) continue;
    const wy = dy === 0 ? 1 - ty : ty;
    for (let dx = 0; dx <= 1; dx++) {
      const px = x0 + dx;
      if (px < 0 || px >= width) continue;
      value += coverage[py * width + px]! * (dx === 0 ? 1 - tx : tx) * wy;
    }
  }
  return value;
}

/** Coefficient of variation of the distance from the centroid to where coverage first falls below 1/2, over RAYS rays. */
function radialCv(coverage: Float32Array, width: number, height: number, centroid: readonly [number, number]): number {
  const [cx, cy] = centroid;
  const limit = Math.hypot(width, height);
  const radii: number[] = [];
  for (let i = 0; i < RAYS; i++) {
    const angle = (2 * Math.PI * i) / RAYS;
    const dx = Math.cos(angle);
    const dy = Math.sin(angle);
    let previous = sample(coverage, width, height, cx, cy);
    let radius = 0;
    for (let r = RAY_STEP; r < limit; r += RAY_STEP) {
      const value = sample(coverage, width, height, cx + dx * r, cy + dy * r);
      if (value < 0.5) {
        // Linear interpolation between the last sample above one half and this one.
        radius = previous <= value ? r : r - RAY_STEP + (RAY_STEP * (previous - 0.5)) / (previous - value);
        break;
      }
      previous = value;
    }
    radii.push(radius);
  }
  const mean = radii.reduce((a, b) => a + b, 0) / radii.length;
  if (mean === 0) return Infinity;
  const variance = radii.reduce((sum, r) => sum + (r - mean) ** 2, 0) / radii.length;
  return Math.sqrt(variance) / mean;
}
