/**
 * Tensors into and out of CoreML models. Our contract feeds integers as int64 and may send a one-head attention
 * mask; the published CoreML packages declare whatever their exporter chose (token ids as float32, pads as int32,
 * masks with all 16 heads). So each input is converted to the data type and shape the loaded model declares.
 */
import { SoraError } from '../errors.js';
import type { BridgeInput, BridgeInputType, BridgeOutput, FeatureDescription } from '../native/coreml.js';
import type { Tensor } from './backend.js';
import { elementCount, float16BitsToFloat32, float32ToFloat16Bits, tensor } from './tensor.js';

type BridgeArray = BridgeInput['data'];

/** NSRange lengths at or beyond this mean "no upper bound" (coremltools writes -1; CoreML reports a huge length). */
const UNBOUNDED_LENGTH = 2 ** 31;

/** How a model's size ranges read: NSRange membership (Apple's documentation), or length = max − min. */
export type RangeReading = 'nsrange' | 'span';

/**
 * Which reading of sizeRangeForDimension a range-constrained feature follows. Apple documents each size as one
 * that "must fall within" the axis' NSRange: membership is location ≤ size < location + length, so the largest size
 * is location + length − 1 and a fixed axis has length 1. Code that reads length as max − min exists too (a fixed
 * axis would then have length 0). The two can be told apart where the feature shows it: a length of 0 contains
 * nothing, and a default size (MLMultiArrayConstraint.shape) at location + length lies outside the NSRange; either
 * switches the feature to the other reading. Elsewhere the documented reading stands, and the Mac self-check
 * (npm run check:mac) prints the raw ranges of a package with a fixed axis inside a range to settle it.
 */
export function rangeReading(feature: FeatureDescription): RangeReading {
  const constraint = feature.shapeConstraint;
  if (constraint.kind !== 'range') return 'nsrange';
  const span = constraint.ranges.some(
    ({ location, length }, axis) =>
      length === 0 || (length < UNBOUNDED_LENGTH && feature.shape[axis] === location + length),
  );
  return span ? 'span' : 'nsrange';
}

/** Per axis [min, max] of a range constraint, max -1 when unbounded; [] for other constraints. */
export function sizeBounds(feature: FeatureDescription): readonly (readonly [number, number])[] {
  const constraint = feature.shapeConstraint;
  if (constraint.kind !== 'range') return [];
  const exclusiveEnd = rangeReading(feature) === 'nsrange' ? 1 : 0;
  return constraint.ranges.map(({ location, length }) =>
    length >= UNBOUNDED_LENGTH ? [location, -1] : [location, location + length - exclusiveEnd],
  );
}

/** Largest integer magnitude each input type holds exactly. */
const EXACT_INTEGER_LIMIT: Record<BridgeInputType, number> = { int32: 2 ** 31 - 1, float32: 2 ** 24, float16: 2 ** 11 };

/** The input as the model declares it: same data when nothing needs converting, else a converted copy. */
export function toModelInput(model: string, feature: FeatureDescription, value: Tensor): BridgeInput {
  const dataType = declaredInputType(model, feature);
  const data = convertValues(model, feature.name, value, dataType);
  const fitted = fitShape(model, feature, value.dims);
  return {
    name: feature.name,
    dataType,
    shape: fitted.dims,
    data: fitted.broadcast ? broadcast(data, value.dims, fitted.dims) : data,
  };
}

/** An output as a contract tensor; float64 (which the contract has no type for) becomes float32. */
export function fromModelOutput(output: BridgeOutput): Tensor {
  switch (output.dataType) {
    case 'float32':
      return tensor('float32', output.shape, new Float32Array(output.data));
    case 'float16':
      return tensor('float16', output.shape, new Uint16Array(output.data));
    case 'int32':
      return tensor('int32', output.shape, new Int32Array(output.data));
    case 'float64':
      return tensor('float32', output.shape, Float32Array.from(new Float64Array(output.data)));
  }
}

function declaredInputType(model: string, feature: FeatureDescription): BridgeInputType {
  if (feature.dataType === null) throw new SoraError('BACKEND', `${model}: input ${feature.name} is not a multi-array`);
  if (feature.dataType === 'float64') {
    throw new SoraError('BACKEND', `${model}: input ${feature.name} is declared float64, which the bridge does not feed`);
  }
  return feature.dataType;
}

function convertValues(model: string, name: string, value: Tensor, to: BridgeInputType): BridgeArray {
  if (value.dtype === to) return value.data as BridgeArray;
  if (value.dtype === 'float32' && to === 'float16') return float32ToFloat16Bits(value.data as Float32Array);
  if (value.dtype === 'float16' && to === 'float32') return float16BitsToFloat32(value.data as Uint16Array);
  // Integers, or floats fed to an integer input: only values the target type holds exactly pass.
  const values = numericValues(value);
  for (const number of values) {
    if (!Number.isInteger(number) || Math.abs(number) > EXACT_INTEGER_LIMIT[to]) {
      throw new SoraError('BACKEND', `${model}: input ${name}: ${value.dtype} value ${number} cannot be fed exactly as ${to}`);
    }
  }
  if (to === 'int32') return Int32Array.from(values);
  return to === 'float32' ? Float32Array.from(values) : float32ToFloat16Bits(values);
}

function numericValues(value: Tensor): ArrayLike<number> & Iterable<number> {
  if (value.data instanceof BigInt64Array) return Array.from(value.data, Number);
  if (value.dtype === 'float16') return float16BitsToFloat32(value.data as Uint16Array);
  return value.data as Float32Array | Int32Array;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((size, axis) => size === b[axis]);
}

function accepts(feature: FeatureDescription, dims: readonly number[]): boolean {
  const constraint = feature.shapeConstraint;
  switch (constraint.kind) {
    case 'range':
      return (
        constraint.ranges.length === dims.length &&
        sizeBounds(feature).every(([min, max], axis) => {
          const size = dims[axis] ?? -1;
          return size >= min && (max < 0 || size <= max);
        })
      );
    case 'enumerated':
      return constraint.shapes.some((shape) => sameDims(shape, dims));
    case 'unspecified':
      return sameDims(feature.shape, dims);
  }
}

/** The one size an axis allows, if it allows only one. */
function fixedSize(feature: FeatureDescription, axis: number): number | undefined {
  const constraint = feature.shapeConstraint;
  switch (constraint.kind) {
    case 'range': {
      const [min, max] = sizeBounds(feature)[axis] ?? [-1, -1];
      return min === max ? min : undefined;
    }
    case 'enumerated': {
      const sizes = new Set(constraint.shapes.map((shape) => shape[axis]));
      return sizes.size === 1 ? [...sizes][0] : undefined;
    }
    case 'unspecified':
      return feature.shape[axis];
  }
}

function describeAccepted(feature: FeatureDescription): string {
  const constraint = feature.shapeConstraint;
  switch (constraint.kind) {
    case 'range': {
      const axes = sizeBounds(feature).map(([min, max]) => (min === max ? `${min}` : `${min}..${max < 0 ? '' : max}`));
      return `[${axes.join(', ')}]`;
    }
    case 'enumerated':
      return `one of ${constraint.shapes.map((shape) => `[${shape.join(', ')}]`).join(', ')}`;
    case 'unspecified':
      return `[${feature.shape.join(', ')}]`;
  }
}

/**
 * The shape to feed: the given one when the model accepts it; size-1 axes widened to the model's fixed size
 * (a one-head mask repeated over all heads); or the model's shape when only the rank differs (same elements).
 */
function fitShape(
  model: string,
  feature: FeatureDescription,
  dims: readonly number[],
): { dims: readonly number[]; broadcast: boolean } {
  if (accepts(feature, dims)) return { dims, broadcast: false };
  const widened = dims.map((size, axis) => (size === 1 ? (fixedSize(feature, axis) ?? size) : size));
  if (!sameDims(widened, dims) && accepts(feature, widened)) return { dims: widened, broadcast: true };
  if (elementCount(feature.shape) === elementCount(dims) && accepts(feature, feature.shape)) {
    return { dims: feature.shape, broadcast: false };
  }
  // "Unspecified" lets CoreML itself decide what it takes.
  if (feature.shapeConstraint.kind === 'unspecified') return { dims, broadcast: false };
  const problem = `input ${feature.name} has shape [${dims.join(', ')}] but the model accepts ${describeAccepted(feature)}`;
  throw new SoraError('BACKEND', `${model}: ${problem}`);
}

/** Repeats size-1 axes of `data` (shape `from`) to shape `to`, copying the unbroadcast trailing axes in chunks. */
function broadcast(data: BridgeArray, from: readonly number[], to: readonly number[]): BridgeArray {
  const ArrayType = data.constructor as new (length: number) => BridgeArray;
  const out = new ArrayType(elementCount(to));
  let chunkAxis = to.length;
  while (chunkAxis > 0 && from[chunkAxis - 1] === to[chunkAxis - 1]) chunkAxis--;
  const chunk = elementCount(to.slice(chunkAxis));
  const sourceStrides = from.map((size, axis) => (size === to[axis] ? elementCount(from.slice(axis + 1)) : 0));
  const index = new Array<number>(chunkAxis).fill(0);
  for (let offset = 0; offset < out.length; offset += chunk) {
    const source = index.reduce((sum, position, axis) => sum + position * (sourceStrides[axis] ?? 0), 0);
    out.set(data.subarray(source, source + chunk), offset);
    for (let axis = chunkAxis - 1; axis >= 0; axis--) {
      index[axis] = (index[axis] ?? 0) + 1;
      if ((index[axis] ?? 0) < (to[axis] ?? 0)) break;
      index[axis] = 0;
    }
  }
  return out;
}
