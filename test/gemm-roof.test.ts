/** The GEMM roof graph and its measurement, on real ONNX Runtime sessions through the ONNX backend. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { blockFlopsPerCall } from '../src/bench/block-flops.js';
import { measureGemmRoof } from '../src/bench/gemm-roof.js';
import { matmulModel } from '../src/bench/matmul-graph.js';
import { loadModel } from '../src/model/manifest.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { ROOT } from './helpers/cli.js';

const backends: OnnxBackend[] = [];
const open = (): OnnxBackend => {
  const backend = new OnnxBackend({ logger: pino({ level: 'silent' }) });
  backends.push(backend);
  return backend;
};

afterEach(async () => {
  await Promise.all(backends.splice(0).map((backend) => backend.close()));
});

describe('GEMM roof', () => {
  it('the hand-written MatMul graph computes a·b with the constant b (checked against a JS product)', async () => {
    const shape = { m: 3, k: 5, n: 4 };
    const dir = await mkdtemp(join(tmpdir(), 'sora-matmul-'));
    try {
      const path = join(dir, 'matmul.onnx');
      await writeFile(path, matmulModel(shape));
      const backend = open();
      const handle = await backend.load({ name: 'matmul', path, weightBytes: 80 });
      const a = Float32Array.from({ length: 15 }, (_, i) => i - 7);
      const { y } = await backend.run(handle, { a: { dtype: 'float32', dims: [3, 5], data: a } });
      expect(y).toMatchObject({ dims: [3, 4] });
      const b = Float32Array.from({ length: 20 }, (_, i) => ((i * 7919) % 2003) / 1001.5 - 1 + 1 / 4096);
      const expected = Array.from({ length: 12 }, (_, cell) => {
        const [row, col] = [Math.floor(cell / 4), cell % 4];
        return Array.from({ length: 5 }, (_, j) => a[row * 5 + j]! * b[j * 4 + col]!).reduce((s, v) => s + v, 0);
      });
      const got = Array.from((y as { data: Float32Array }).data);
      got.forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 4));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('measures a positive FLOP/s from timed runs of a small MatMul', async () => {
    const roof = await measureGemmRoof(open(), { m: 256, k: 128, n: 512 }, 3);
    expect(roof.shape).toEqual([256, 128, 512]);
    expect(roof.flops).toBe(2 * 256 * 128 * 512);
    expect(roof.run.n).toBe(3);
    expect(roof.flopsPerSecond).toBeGreaterThan(0);
    expect(roof.flopsPerSecond).toBeCloseTo(roof.flops / (roof.run.medianMs / 1000), -3);
    expect(roof.peakFlopsPerSecond).toBeGreaterThanOrEqual(roof.flopsPerSecond);
  });
});

describe('block FLOPs per call', () => {
  it('counts ST and TDTM pairs, STDiT parts and T5 layers; none for VAE parts and lookups', async () => {
    const model = await loadModel(join(ROOT, 'models', 'tiny'));
    const video = { width: 128, height: 128, numFrames: 17 };
    const flops = (name: string) => blockFlopsPerCall(name, model, video, 10);
    expect(flops('stdit3_ST_0')).toBeGreaterThan(0);
    // TDTM halves the frames of self-attention and cross-attention queries, not the MLP: less, but over half.
    expect(flops('stdit3_TDTM_0')!).toBeLessThan(flops('stdit3_ST_0')!);
    expect(flops('stdit3_TDTM_0')!).toBeGreaterThan(flops('stdit3_ST_0')! / 2);
    expect(flops('stdit3_part1')).toBeGreaterThan(0);
    expect(flops('stdit3_part2')).toBeGreaterThan(0);
    // One T5 layer over 300 tokens at d_model 64, 4 heads of 16, d_ff 128: q/k/v/o, scores, gated feed-forward.
    expect(flops('t5block-layer0')).toBe(4 * 2 * 300 * 64 * 64 + 4 * 300 * 300 * 64 + 3 * 2 * 300 * 64 * 128);
    expect(flops('vae_spatial_part1')).toBeNull();
    expect(flops('t5embed-tokens')).toBeNull();
  });
});
