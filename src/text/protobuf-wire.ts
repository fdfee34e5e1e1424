/**
 * A reader of the protobuf wire format, enough for SentencePiece's `spiece.model`.
 *
 * Written here rather than taken from a library: the only protobuf library in the tree (protobufjs, pulled in by the
 * dev-only onnx-proto) is not installed for users, and reading a model needs four wire types and no schema
 * compiler. Unknown fields are skipped, as protobuf requires, so newer SentencePiece fields do not break parsing.
 */

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_BYTES = 2;
export const WIRE_FIXED32 = 5;

export interface WireField {
  readonly number: number;
  readonly wireType: number;
  /** Varint value (wire type 0): a bigint, since int32 −1 is sent as a 64-bit two's complement. */
  readonly varint?: bigint;
  /** Payload of a length-delimited (2) or fixed-size (1, 5) field. */
  readonly bytes?: Uint8Array;
}

export class WireFormatError extends Error {}

/** The fields of one message, in order; a truncated or malformed message throws WireFormatError. */
export function* wireFields(message: Uint8Array): Generator<WireField> {
  let offset = 0;
  const varint = (): bigint => {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (offset >= message.length) throw new WireFormatError(`truncated varint at byte ${offset}`);
      const byte = message[offset++]!;
      value |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value;
    }
    throw new WireFormatError(`varint longer than 10 bytes at byte ${offset}`);
  };
  const length = (): number => {
    const value = varint();
    if (value > BigInt(message.length)) throw new WireFormatError(`length ${value} runs past the end at byte ${offset}`);
    return Number(value);
  };
  const take = (length: number): Uint8Array => {
    if (offset + length > message.length) throw new WireFormatError(`field of ${length} bytes runs past the end at byte ${offset}`);
    const slice = message.subarray(offset, offset + length);
    offset += length;
    return slice;
  };
  while (offset < message.length) {
    const key = varint();
    const number = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (number === 0) throw new WireFormatError(`field number 0 at byte ${offset}`);
    switch (wireType) {
      case WIRE_VARINT:
        yield { number, wireType, varint: varint() };
        break;
      case WIRE_FIXED64:
        yield { number, wireType, bytes: take(8) };
        break;
      case WIRE_BYTES:
        yield { number, wireType, bytes: take(length()) };
        break;
      case WIRE_FIXED32:
        yield { number, wireType, bytes: take(4) };
        break;
      default:
        throw new WireFormatError(`unsupported wire type ${wireType} (field ${number}) at byte ${offset}`);
    }
  }
}

export function fixed32Float(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getFloat32(0, true);
}

/** A varint read as protobuf's int32 (negative values arrive as 64-bit two's complement). */
export function int32(value: bigint): number {
  return Number(BigInt.asIntN(32, value));
}
