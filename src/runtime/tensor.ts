/**
 * Tensor constructors and conversions. float16 travels as raw IEEE half bits in a Uint16Array because Node 20
 * has no Float16Array and onnxruntime-node accepts only Uint16Array for float16.
 */
import { SoraError } from '../errors.js';
import type { Tensor, TensorData, TensorDType } from './backend.js';

const ARRAY_TYPES = {
  float32: Float32Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
} as const;

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, dim) => product * dim, 1);
}

/** A tensor over existing data; the data's array type and length must match dtype and dims. */
export function tensor(dtype: TensorDType, dims: readonly number[], data: TensorData): Tensor {
  if (!(data instanceof ARRAY_TYPES[dtype])) {
    throw new SoraError('INTERNAL', `${dtype} tensor needs a ${ARRAY_TYPES[dtype].name}, got ${data.constructor.name}`);
  }
  if (dims.some((dim) => !Number.isInteger(dim) || dim < 0) || data.length !== elementCount(dims)) {
    throw new SoraError('INTERNAL', `tensor of shape [${dims.join(', ')}] cannot hold ${data.length} elements`);
  }
  return { dtype, dims: [...dims], data };
}

/** A tensor from plain numbers, converted to the dtype (float16 rounds to nearest even, integers must be exact). */
export function fromNumbers(dtype: TensorDType, dims: readonly number[], values: ArrayLike<number>): Tensor {
  switch (dtype) {
    case 'float32':
      return tensor(dtype, dims, Float32Array.from(values));
    case 'float16':
      return tensor(dtype, dims, float32ToFloat16Bits(values));
    case 'int64':
      return tensor(dtype, dims, BigInt64Array.from(Array.from(values, (value) => BigInt(value))));
    case 'int32':
      return tensor(dtype, dims, Int32Array.from(values));
  }
}

/** A tensor from little-endian bytes (golden files, raw dumps); the bytes are copied into an aligned buffer. */
export function fromBytes(dtype: TensorDType, dims: readonly number[], bytes: Uint8Array): Tensor {
  const ArrayType = ARRAY_TYPES[dtype];
  if (bytes.byteLength % ArrayType.BYTES_PER_ELEMENT !== 0) {
    throw new SoraError('INTERNAL', `${bytes.byteLength} bytes are not a whole number of ${dtype} values`);
  }
  const copy = new Uint8Array(bytes).buffer;
  return tensor(dtype, dims, new ArrayType(copy));
}

/** The values as float32 (float16 decoded, integers converted), e.g. to compare against a reference. */
export function toFloat32(t: Tensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  if (t.dtype === 'float16') return float16BitsToFloat32(t.data as Uint16Array);
  return Float32Array.from(t.data as ArrayLike<number | bigint>, Number);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function halfBits(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0] ?? 0;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    // Subnormal half: shift the mantissa with its implicit bit into place, round half to even.
    const shift = 14 - halfExponent;
    const full = mantissa | 0x800000;
    return sign | roundShift(full, shift);
  }
  // A rounding carry out of the mantissa correctly bumps the exponent (up to infinity).
  return sign | ((halfExponent << 10) + roundShift(mantissa, 13));
}

function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const rest = value & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return rest > halfway || (rest === halfway && (kept & 1) === 1) ? kept + 1 : kept;
}

export function float32ToFloat16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfBits(values[i] ?? 0);
  return out;
}

function halfValue(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfValue(bits[i] ?? 0);
  return out;
}
