/**
 * Framing of the block-runner protocol (docs/runner-protocol.md): a 16-byte prefix (magic, header length, payload
 * length), a JSON header, and the raw little-endian bytes of the tensors the header lists, each starting at a
 * multiple of 8. Written by hand: the format is ours, and the device side implements the same in C++
 * (ios/runner-core), both checked against the byte-level vectors in test/fixtures/runner-protocol.
 */
import { endianness } from 'node:os';
import { SoraError } from '../errors.js';
import { DTYPE_BYTES, TENSOR_DTYPES, type Tensor, type TensorData, type TensorDType } from './backend.js';

export const FRAME_MAGIC = 'OSRP';
export const PREFIX_BYTES = 16;
/** Tensors start at multiples of this in the payload, so that typed arrays can be views of it. */
export const TENSOR_ALIGNMENT = 8;
/** Limits before hello has declared the runner's: a hello and its reply fit in this. */
export const HELLO_LIMIT_BYTES = 64 * 1024;

export interface FrameLimits {
  /** Largest JSON header. */
  readonly maxHeaderBytes: number;
  /** Largest frame: prefix + header + payload. */
  readonly maxFrameBytes: number;
}

export const HELLO_LIMITS: FrameLimits = { maxHeaderBytes: HELLO_LIMIT_BYTES, maxFrameBytes: HELLO_LIMIT_BYTES };

/** A tensor as the header describes it. */
export interface TensorDescriptor {
  readonly dtype: TensorDType;
  readonly dims: readonly number[];
}

export type FrameHeader = Readonly<Record<string, unknown>>;

export interface Frame {
  /** The JSON header, with its `tensors` descriptors. */
  readonly header: FrameHeader;
  /** The payload's tensors, in the order of header.tensors. */
  readonly tensors: readonly Tensor[];
}

/** The protocol's error codes (docs/runner-protocol.md, "Errors"). */
export const ERROR_CODES = [
  'bad-frame',
  'frame-too-large',
  'bad-tensor',
  'bad-request',
  'unknown-message',
  'not-ready',
  'version',
  'unauthorized',
  'busy',
  'no-such-block',
  'no-such-handle',
  'limit',
  'load-failed',
  'run-failed',
  'shutting-down',
] as const;
export type ProtocolErrorCode = (typeof ERROR_CODES)[number];

/** A frame the reader could not take. `fatal`: the byte stream cannot be followed any more; the connection ends. */
export interface FrameProblem {
  readonly code: ProtocolErrorCode;
  readonly message: string;
  /** The request's id when the header could be read. */
  readonly id: number | null;
  readonly fatal: boolean;
}

if (endianness() !== 'LE') throw new Error('the runner protocol carries little-endian tensors; this machine is big-endian');

const align = (offset: number): number => Math.ceil(offset / TENSOR_ALIGNMENT) * TENSOR_ALIGNMENT;

/**
 * One frame as chunks to write in order: the prefix and header, then each tensor's bytes as a view of its data (no
 * copy) with zero padding between them. `header` must not have a `tensors` field: it is made from `tensors`.
 */
export function encodeFrame(header: FrameHeader, tensors: readonly Tensor[] = []): Buffer[] {
  if ('tensors' in header) throw new SoraError('INTERNAL', 'a frame header has no field "tensors" of its own: it lists the payload');
  const descriptors = tensors.map((t) => ({ dtype: t.dtype, dims: [...t.dims] }));
  const json = Buffer.from(JSON.stringify(tensors.length === 0 ? header : { ...header, tensors: descriptors }), 'utf8');
  const chunks: Buffer[] = [];
  let payload = 0;
  for (const t of tensors) {
    const padding = align(payload) - payload;
    if (padding > 0) chunks.push(Buffer.alloc(padding));
    chunks.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    payload = align(payload) + t.data.byteLength;
  }
  const prefix = Buffer.alloc(PREFIX_BYTES);
  prefix.write(FRAME_MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.byteLength, 4);
  prefix.writeBigUInt64LE(BigInt(payload), 8);
  return [Buffer.concat([prefix, json]), ...chunks];
}

/** encodeFrame as one buffer (tests, small frames). */
export function frameBytes(header: FrameHeader, tensors: readonly Tensor[] = []): Buffer {
  return Buffer.concat(encodeFrame(header, tensors));
}

const ARRAYS = { float32: Float32Array, float16: Uint16Array, int64: BigInt64Array, int32: Int32Array } as const;

/** Bytes of one tensor, or undefined when its dims are not a list of non-negative safe integers. */
function tensorBytes(descriptor: unknown): number | undefined {
  if (typeof descriptor !== 'object' || descriptor === null) return undefined;
  const { dtype, dims } = descriptor as { dtype?: unknown; dims?: unknown };
  if (typeof dtype !== 'string' || !(TENSOR_DTYPES as readonly string[]).includes(dtype)) return undefined;
  if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) return undefined;
  const bytes = (dims as number[]).reduce((product, d) => product * d, DTYPE_BYTES[dtype as TensorDType]);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** The payload's tensors, as views of it; a problem message when the descriptors and the payload disagree. */
export function payloadTensors(descriptors: unknown, bytes: Uint8Array): Tensor[] | string {
  // Views need aligned offsets: a payload that does not start at a multiple of 8 (a pooled Buffer) is copied.
  const payload = bytes.byteOffset % TENSOR_ALIGNMENT === 0 && bytes.buffer instanceof ArrayBuffer ? bytes : new Uint8Array(bytes);
  if (descriptors === undefined) return payload.byteLength === 0 ? [] : 'a payload without tensors in the header';
  if (!Array.isArray(descriptors)) return 'tensors must be a list';
  const tensors: Tensor[] = [];
  let offset = 0;
  for (const [i, descriptor] of descriptors.entries()) {
    const bytes = tensorBytes(descriptor);
    if (bytes === undefined) return `tensor ${i}: dtype must be one of ${TENSOR_DTYPES.join(', ')} and dims non-negative integers`;
    offset = align(offset);
    if (offset + bytes > payload.byteLength) return `tensor ${i} needs ${bytes} bytes at offset ${offset}; the payload has ${payload.byteLength}`;
    const { dtype, dims } = descriptor as TensorDescriptor;
    const ArrayType = ARRAYS[dtype];
    const data = new ArrayType(payload.buffer as ArrayBuffer, payload.byteOffset + offset, bytes / ArrayType.BYTES_PER_ELEMENT) as TensorData;
    tensors.push({ dtype, dims: [...dims], data });
    offset += bytes;
  }
  if (offset !== payload.byteLength) return `the tensors take ${offset} bytes; the payload has ${payload.byteLength}`;
  return tensors;
}

type ReaderEvent = { readonly frame: Frame } | { readonly problem: FrameProblem };

/**
 * Splits a byte stream into frames, holding at most one frame's bytes. A frame over the limits is reported, and its
 * payload skipped as it arrives without being stored; a stream that breaks the framing (bad magic, a header over the
 * limit) is reported once as fatal, after which the reader takes nothing more.
 */
export class FrameReader {
  #limits: FrameLimits;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #state: 'prefix' | 'header' | 'payload' | 'skip' | 'broken' = 'prefix';
  #headerBytes = 0;
  #payloadBytes = 0;
  #header: { value: unknown; id: number | null } | undefined;
  #payload: Uint8Array | undefined;
  #filled = 0;
  #skipLeft = 0;

  constructor(limits: FrameLimits = HELLO_LIMITS) {
    this.#limits = limits;
  }

  /** Once hello has declared them. */
  setLimits(limits: FrameLimits): void {
    this.#limits = limits;
  }

  /** Bytes held for a frame not yet complete. */
  get buffered(): number {
    return this.#pendingBytes + this.#filled;
  }

  /** The frames and problems `chunk` completes, in stream order. */
  push(chunk: Uint8Array): ReaderEvent[] {
    const events: ReaderEvent[] = [];
    let rest = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (rest.byteLength > 0 && this.#state !== 'broken') {
      if (this.#state === 'payload') rest = this.#fill(rest, events);
      else if (this.#state === 'skip') rest = this.#skip(rest);
      else rest = this.#collect(rest, events);
    }
    return events;
  }

  /** Prefix and header: small, gathered from chunks then parsed. */
  #collect(chunk: Buffer, events: ReaderEvent[]): Buffer {
    const want = this.#state === 'prefix' ? PREFIX_BYTES : this.#headerBytes;
    const take = Math.min(want - this.#pendingBytes, chunk.byteLength);
    this.#pending.push(chunk.subarray(0, take));
    this.#pendingBytes += take;
    if (this.#pendingBytes === want) {
      const bytes = Buffer.concat(this.#pending);
      this.#pending = [];
      this.#pendingBytes = 0;
      if (this.#state === 'prefix') this.#prefix(bytes, events);
      else this.#parseHeader(bytes, events);
    }
    return chunk.subarray(take);
  }

  #prefix(bytes: Buffer, events: ReaderEvent[]): void {
    if (bytes.toString('latin1', 0, 4) !== FRAME_MAGIC) return this.#break(events, 'bad-frame', 'the frame does not start with OSRP');
    this.#headerBytes = bytes.readUInt32LE(4);
    const payload = bytes.readBigUInt64LE(8);
    if (this.#headerBytes > this.#limits.maxHeaderBytes) {
      return this.#break(events, 'frame-too-large', `a ${this.#headerBytes}-byte header is over the limit of ${this.#limits.maxHeaderBytes}`);
    }
    if (this.#headerBytes === 0) return this.#break(events, 'bad-frame', 'the header is empty');
    // Beyond 2^53 the length is over any limit; Number() keeps it that way.
    this.#payloadBytes = Number(payload);
    this.#state = 'header';
  }

  #parseHeader(bytes: Buffer, events: ReaderEvent[]): void {
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch {
      value = undefined;
    }
    const id = idOf(value);
    this.#header = { value, id };
    const total = PREFIX_BYTES + this.#headerBytes + this.#payloadBytes;
    if (total > this.#limits.maxFrameBytes) {
      const problem = { code: 'frame-too-large', id, fatal: false, message: `a ${total}-byte frame is over the limit of ${this.#limits.maxFrameBytes}` } as const;
      return this.#startSkip(problem, events);
    }
    if (!isHeader(value)) {
      const problem = { code: 'bad-frame', id, fatal: false, message: 'the header must be a JSON object with a string type and an id' } as const;
      return this.#startSkip(problem, events);
    }
    this.#payload = new Uint8Array(this.#payloadBytes);
    this.#filled = 0;
    this.#state = 'payload';
    if (this.#payloadBytes === 0) this.#finish(events);
  }

  #fill(chunk: Buffer, events: ReaderEvent[]): Buffer {
    const take = Math.min(this.#payloadBytes - this.#filled, chunk.byteLength);
    this.#payload!.set(chunk.subarray(0, take), this.#filled);
    this.#filled += take;
    if (this.#filled === this.#payloadBytes) this.#finish(events);
    return chunk.subarray(take);
  }

  #finish(events: ReaderEvent[]): void {
    const header = this.#header!.value as FrameHeader;
    const id = this.#header!.id;
    const payload = this.#payload!;
    this.#payload = undefined;
    this.#filled = 0;
    this.#state = 'prefix';
    const tensors = payloadTensors(header.tensors, payload);
    if (typeof tensors === 'string') events.push({ problem: { code: 'bad-tensor', id, fatal: false, message: tensors } });
    else events.push({ frame: { header, tensors } });
  }

  /** Reported at once, so that the sender hears of it before it has sent the rest. */
  #startSkip(problem: FrameProblem, events: ReaderEvent[]): void {
    events.push({ problem });
    this.#skipLeft = this.#payloadBytes;
    this.#state = this.#skipLeft === 0 ? 'prefix' : 'skip';
  }

  #skip(chunk: Buffer): Buffer {
    const take = Math.min(this.#skipLeft, chunk.byteLength);
    this.#skipLeft -= take;
    if (this.#skipLeft === 0) this.#state = 'prefix';
    return chunk.subarray(take);
  }

  #break(events: ReaderEvent[], code: ProtocolErrorCode, message: string): void {
    this.#state = 'broken';
    this.#pending = [];
    this.#pendingBytes = 0;
    events.push({ problem: { code, id: null, fatal: true, message } });
  }
}

/** An object with a string type and an id: an integer from 0 to 2^31 − 1, or null (an error reply to no request). */
function isHeader(value: unknown): value is FrameHeader {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const { type, id } = value as { type?: unknown; id?: unknown };
  return typeof type === 'string' && (id === null || idOf(value) !== null);
}

function idOf(header: unknown): number | null {
  const id = (header as { id?: unknown } | undefined)?.id;
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0x7fffffff ? id : null;
}

/** A reply that says a request failed, as a SoraError for the host. */
export function protocolError(where: string, code: string, message: string): SoraError {
  return new SoraError('BACKEND', `${where}: ${code}: ${message}`);
}
