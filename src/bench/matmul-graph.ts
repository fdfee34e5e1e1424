/**
 * A MatMul-only ONNX model, [M×K]·[K×N] with the right-hand side a constant initializer as a block's weights are
 * (so ONNX Runtime prepacks it the same way), written as protobuf bytes.
 *
 * Hand-written rather than built with a library: the only protobuf library in the tree (protobufjs, under the
 * dev-only onnx-proto) is not installed for users, and this model needs two wire types and five messages.
 */

const WIRE_VARINT = 0;
const WIRE_BYTES = 2;
const FLOAT = 1; // TensorProto.DataType.FLOAT
const IR_VERSION = 8;
const OPSET = 13;

function varint(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return out;
}

const key = (field: number, wire: number): number[] => varint(field * 8 + wire);
const intField = (field: number, value: number): number[] => [...key(field, WIRE_VARINT), ...varint(value)];

function bytesField(field: number, payload: Uint8Array | readonly number[]): Uint8Array {
  const head = [...key(field, WIRE_BYTES), ...varint(payload.length)];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

const text = (field: number, value: string): Uint8Array => bytesField(field, new TextEncoder().encode(value));

function concat(parts: readonly (Uint8Array | readonly number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** ValueInfoProto of a float tensor with fixed dims. */
function floatValue(name: string, dims: readonly number[]): Uint8Array {
  const shape = concat(dims.map((dim) => bytesField(1, intField(1, dim))));
  const tensorType = concat([intField(1, FLOAT), bytesField(2, shape)]);
  return concat([text(1, name), bytesField(2, bytesField(1, tensorType))]);
}

/**
 * Values spread over [−1, 1) without denormals or zeros, so the kernel does the work it does on real weights.
 * A fixed pattern, not random: the roof does not depend on the values.
 */
function weights(count: number): Float32Array {
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = ((i * 7919) % 2003) / 1001.5 - 1 + 1 / 4096;
  return data;
}

export interface MatMulShape {
  readonly m: number;
  readonly k: number;
  readonly n: number;
}

/** Input `a` [M, K], constant `b` [K, N], output `y` [M, N]. */
export function matmulModel({ m, k, n }: MatMulShape): Uint8Array {
  const b = weights(k * n);
  const initializer = concat([
    intField(1, k),
    intField(1, n),
    intField(2, FLOAT),
    text(8, 'b'),
    bytesField(9, new Uint8Array(b.buffer, b.byteOffset, b.byteLength)),
  ]);
  const node = concat([text(1, 'a'), text(1, 'b'), text(2, 'y'), text(3, 'matmul'), text(4, 'MatMul')]);
  const graph = concat([
    bytesField(1, node),
    text(2, 'gemm_roof'),
    bytesField(5, initializer),
    bytesField(11, floatValue('a', [m, k])),
    bytesField(12, floatValue('y', [m, n])),
  ]);
  return concat([intField(1, IR_VERSION), bytesField(8, intField(2, OPSET)), bytesField(7, graph)]);
}
