/**
 * The TypeScript side against the protocol's byte-level vectors (test/fixtures/runner-protocol, written by
 * scripts/make_runner_vectors.py from docs/runner-protocol.md): the frame codec byte for byte, the reader on bad
 * input, and `serve` on whole sessions over a real socket. ios/runner-core's tests read the same files.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../src/runtime/backend.js';
import { encodeFrame, FrameReader, type Frame, type FrameLimits } from '../src/runtime/runner-frames.js';
import { fromBytes } from '../src/runtime/tensor.js';
import { assertBuilt } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { rawConnection, startServe, type ServeProcess } from './helpers/runner.js';

const FIXTURES = new URL('./fixtures/runner-protocol/', import.meta.url);

interface HexTensor {
  readonly dtype: Tensor['dtype'];
  readonly dims: number[];
  readonly hex: string;
}

interface Vectors {
  readonly frames: { name: string; file: string; header: Record<string, unknown>; tensors: HexTensor[] }[];
  readonly bad: {
    name: string;
    file: string;
    limits: FrameLimits;
    problem: { code: string; fatal: boolean; id: number | null };
    next?: Record<string, unknown>;
  }[];
  readonly sessions: { name: string; steps: { send: string; expect: Record<string, unknown>[] }[] }[];
}

const vectors = JSON.parse(readFileSync(new URL('vectors.json', FIXTURES), 'utf8')) as Vectors;
const bytesOf = (file: string): Buffer => readFileSync(new URL(file, FIXTURES));
const tensorOf = (t: HexTensor): Tensor => fromBytes(t.dtype, t.dims, Buffer.from(t.hex, 'hex'));
const hexOf = (t: Tensor): string => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');

/** Feeds the reader in pieces of every size from 1 byte up, so that no frame relies on arriving whole. */
function readInPieces(bytes: Buffer, limits: FrameLimits, piece: number) {
  const reader = new FrameReader(limits);
  const events = [];
  for (let at = 0; at < bytes.byteLength; at += piece) events.push(...reader.push(bytes.subarray(at, at + piece)));
  return events;
}

const ROOMY: FrameLimits = { maxHeaderBytes: 1 << 20, maxFrameBytes: 1 << 24 };

describe('frames: the codec reproduces every vector byte for byte and reads it back', () => {
  for (const vector of vectors.frames) {
    it(vector.name, () => {
      const bytes = bytesOf(vector.file);
      const { tensors: _, ...header } = vector.header;
      expect(Buffer.concat(encodeFrame(header, vector.tensors.map(tensorOf)))).toEqual(bytes);
      for (const piece of [1, 7, bytes.byteLength]) {
        const events = readInPieces(bytes, ROOMY, piece);
        expect(events).toHaveLength(1);
        const frame = (events[0] as { frame: Frame }).frame;
        expect(frame.header).toEqual(vector.header);
        expect(frame.tensors.map((t) => ({ dtype: t.dtype, dims: t.dims, hex: hexOf(t) }))).toEqual(vector.tensors);
      }
    });
  }
});

describe('bad frames: the reader reports each, and goes on where the stream can be followed', () => {
  for (const vector of vectors.bad) {
    it(vector.name, () => {
      const events = readInPieces(bytesOf(vector.file), vector.limits, 5);
      recordFaults({ badInputs: 1 });
      expect(events[0]).toEqual({ problem: { ...vector.problem, message: expect.any(String) } });
      if (vector.next === undefined) expect(events).toHaveLength(1);
      else expect(events[1]).toMatchObject({ frame: { header: vector.next } });
    });
  }
});

describe('sessions: serve answers each step as the vectors say', () => {
  let runner: ServeProcess;

  beforeAll(async () => {
    assertBuilt();
    runner = await startServe();
  });

  afterAll(async () => {
    await runner?.stop();
  });

  /** The next `count` replies on the socket. */
  function nextReplies(socket: Socket, reader: FrameReader, count: number): Promise<Frame[]> {
    return new Promise((resolve, reject) => {
      const got: Frame[] = [];
      const timer = setTimeout(() => reject(new Error('no reply')), 30_000);
      const onData = (chunk: Buffer): void => {
        for (const event of reader.push(chunk)) {
          if ('problem' in event) return reject(new Error(event.problem.message));
          got.push(event.frame);
        }
        if (got.length >= count) {
          clearTimeout(timer);
          socket.off('data', onData);
          resolve(got);
        }
      };
      socket.on('data', onData);
    });
  }

  for (const session of vectors.sessions) {
    it(session.name, async () => {
      const socket = await rawConnection(runner.address);
      const reader = new FrameReader(ROOMY);
      try {
        for (const step of session.steps) {
          const replies = nextReplies(socket, reader, step.expect.length);
          socket.write(bytesOf(step.send));
          const got = await replies;
          for (const [i, expected] of step.expect.entries()) {
            const { tensors, ...header } = expected as { tensors?: HexTensor[] };
            expect(got[i]!.header).toMatchObject(header);
            if (tensors !== undefined) expect(got[i]!.tensors.map((t) => ({ dtype: t.dtype, dims: t.dims, hex: hexOf(t) }))).toEqual(tensors);
          }
        }
        recordFaults({ badInputs: session.steps.filter((step) => step.expect.some((reply) => reply.type === 'error')).length });
      } finally {
        socket.destroy();
      }
    });
  }
});
