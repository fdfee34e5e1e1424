import { hostOutputs } from '../src/runtime/backend.js';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { float16BitsToFloat32, float32ToFloat16Bits, fromBytes, fromNumbers, tensor, toFloat32 } from '../src/runtime/tensor.js';
import { tempDir } from './helpers/model-folder.js';
import { node, writeModel } from './helpers/onnx-graphs.js';

const backend = new OnnxBackend({ logger: pino({ level: 'silent' }), workers: 1 });
let dir: string | undefined;
afterAll(async () => {
  await backend.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('float16 bit conversion', () => {
  it('round-trips every finite and infinite half value exactly', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const back = float32ToFloat16Bits(float16BitsToFloat32(all));
    for (let bits = 0; bits < 65536; bits++) {
      const isNaN = (bits & 0x7c00) === 0x7c00 && (bits & 0x03ff) !== 0;
      if (isNaN) expect((back[bits]! & 0x7c00) === 0x7c00 && (back[bits]! & 0x03ff) !== 0).toBe(true);
      else if (back[bits] !== bits) expect.fail(`bits 0x${bits.toString(16)} came back as 0x${back[bits]!.toString(16)}`);
    }
  });

  it('rounds to nearest, ties to even, and saturates to infinity', () => {
    const cases: [number, number][] = [
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10 → even (1)
      [1 + 3 * 2 ** -11, 0x3c02], // tie → even (1+2^-9)
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00], // rounds up past the largest finite half
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie with zero → even (0)
      [1.5 * 2 ** -25, 0x0001],
      [-0, 0x8000],
      [Number.NEGATIVE_INFINITY, 0xfc00],
    ];
    for (const [value, bits] of cases) expect([value, float32ToFloat16Bits([value])[0]]).toEqual([value, bits]);
  });

  it('matches ONNX Runtime’s own float32 → float16 Cast bit for bit', async () => {
    dir = await tempDir();
    const path = join(dir, 'cast.onnx');
    await writeModel(path, {
      nodes: [node('Cast', ['x'], ['y'], [{ name: 'to', type: 2 /* INT */, i: 10 /* FLOAT16 */ }])],
      inputs: [{ name: 'x', dtype: 'float32', shape: ['n'] }],
      outputs: [{ name: 'y', dtype: 'float16', shape: ['n'] }],
    });
    const values = Float32Array.from({ length: 20000 }, (_, i) => Math.sinh((i - 10000) / 900) * (i % 3 === 0 ? 1e-6 : 1));
    const handle = await backend.load({ name: 'cast', path, weightBytes: 0 });
    const out = hostOutputs(await backend.run(handle, { x: tensor('float32', [values.length], values) }));
    expect([...(out.y?.data as Uint16Array)]).toEqual([...float32ToFloat16Bits(values)]);
  });
});

describe('tensor constructors', () => {
  it('rejects data whose type or length does not fit', () => {
    expect(() => tensor('float16', [2], new Float32Array(2))).toThrow('float16 tensor needs a Uint16Array');
    expect(() => tensor('float32', [2, 3], new Float32Array(5))).toThrow('shape [2, 3] cannot hold 5 elements');
  });

  it('reads little-endian bytes into an aligned copy and converts to float32', () => {
    const bytes = new Uint8Array(1 + 16).subarray(1);
    new DataView(bytes.buffer, bytes.byteOffset).setBigInt64(8, -5n, true);
    const t = fromBytes('int64', [2], bytes);
    expect([...(t.data as BigInt64Array)]).toEqual([0n, -5n]);
    expect([...toFloat32(t)]).toEqual([0, -5]);
    expect([...toFloat32(fromNumbers('float16', [2], [0.5, -2]))]).toEqual([0.5, -2]);
  });
});
