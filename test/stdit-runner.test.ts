import { describe, expect, it } from 'vitest';
import { MASKED } from '../src/pipeline/attention-mask.js';
import { ResidentBlockProvider } from '../src/pipeline/block-provider.js';
import { gaussianNoise } from '../src/pipeline/rng.js';
import { StditRunner } from '../src/pipeline/stdit-runner.js';
import { float32Tensor, int64Scalar, type Float32Tensor } from '../src/pipeline/tensors.js';
import type { NamedTensors } from '../src/runtime/backend.js';
import { FakeBackend, fakeSources } from './helpers/fake-backend.js';
import { maxRelativeError, readGolden, tinyBlocks } from './helpers/golden.js';

const C = 8; // hidden size of the fake blocks
const L = 3; // valid caption tokens

/**
 * Fake STDiT blocks with the contract's shapes: part1 tokenises, each block adds 1 to x, part2 writes
 * `batch·100 + channel` (plus the number of blocks run) into [2,8,T,H,W], so the CFG split can be checked.
 */
function fakeStdit(name: string, inputs: NamedTensors): NamedTensors {
  if (name === 'stdit3_part1') {
    const z = inputs.z_in as Float32Tensor;
    const [, , T = 0, H = 0, W = 0] = z.dims;
    const padH = Number((inputs.padH!.data as BigInt64Array)[0]);
    const padW = Number((inputs.padW!.data as BigInt64Array)[0]);
    const N = (T * (H + padH) * (W + padW)) / 4;
    return {
      x: float32Tensor([2, N, C], new Float32Array(2 * N * C)),
      outY: float32Tensor([1, 2 * L, C], new Float32Array(2 * L * C)),
      t_mlp: float32Tensor([2, 6 * C], new Float32Array(12 * C)),
      T: int64Scalar(T),
      outT: float32Tensor([2, C], new Float32Array(2 * C)),
    };
  }
  if (name === 'stdit3_part2') {
    const z = inputs.z_in as Float32Tensor;
    const [, , T = 0, H = 0, W = 0] = z.dims;
    const plane = T * H * W;
    const out = new Float32Array(2 * 8 * plane);
    const blocksRun = (inputs.x as Float32Tensor).data[0]!;
    for (let b = 0; b < 2; b++) for (let c = 0; c < 8; c++) out.fill(b * 100 + c + blocksRun, (b * 8 + c) * plane, (b * 8 + c + 1) * plane);
    return { output: float32Tensor([2, 8, T, H, W], out) };
  }
  const x = inputs.x as Float32Tensor;
  return { output: float32Tensor(x.dims, x.data.map((v) => v + 1)) };
}

function textEncoding() {
  const mask = new Float32Array(300).fill(1, 0, L);
  return {
    y: float32Tensor([1, 1, 300, 4], new Float32Array(1200).fill(0.25)),
    yNull: float32Tensor([1, 1, 300, 4], new Float32Array(1200).fill(-0.5)),
    mask: float32Tensor([1, 300], mask),
  };
}

const names = ['stdit3_part1', 'stdit3_part2', ...[0, 1, 2].flatMap((i) => [`stdit3_ST_${i}`, `stdit3_TDTM_${i}`])];

function runner(latent: { frames: number; height: number; width: number }) {
  const backend = new FakeBackend(fakeStdit);
  const provider = new ResidentBlockProvider(backend, fakeSources(names));
  const stdit = new StditRunner({
    provider,
    depth: 3,
    latent: { channels: 4, ...latent },
    text: textEncoding(),
    fps: 24,
    width: latent.width * 8,
    height: latent.height * 8,
  });
  return { backend, stdit };
}

describe('STDiT runner (fake blocks)', () => {
  it('feeds part1 the CFG batch: [z; z], [t; t], [y; y_null], the mask and the pixel conditioning', async () => {
    const { backend, stdit } = runner({ frames: 5, height: 4, width: 6 });
    const z = Float32Array.from({ length: 4 * 5 * 4 * 6 }, (_, i) => i / 10);
    await stdit.predict(z, { index: 0, steps: 30, t: 987.5, variant: 'st' });
    const part1 = backend.runs[0]!.inputs;
    expect(part1.z_in!.dims).toEqual([2, 4, 5, 4, 6]);
    expect([...(part1.z_in!.data as Float32Array)]).toEqual([...z, ...z]);
    expect([...(part1.t!.data as Float32Array)]).toEqual([987.5, 987.5]);
    expect(part1.y!.dims).toEqual([2, 1, 300, 4]);
    expect((part1.y!.data as Float32Array)[0]).toBe(0.25);
    expect((part1.y!.data as Float32Array)[1200]).toBe(-0.5);
    expect([...(part1.fps!.data as Float32Array), ...(part1.height!.data as Float32Array), ...(part1.width!.data as Float32Array)]).toEqual([24, 32, 48]);
    expect([part1.padH!.data[0], part1.padW!.data[0]]).toEqual([0n, 0n]);
  });

  it('runs part1 → ST_0..ST_{d−1} → part2 and splits channels 0–3 of batch rows 0 and 1', async () => {
    const { backend, stdit } = runner({ frames: 5, height: 4, width: 6 });
    const velocity = await stdit.predict(new Float32Array(480), { index: 0, steps: 30, t: 1000, variant: 'st' });
    expect(backend.runs.map((run) => run.block)).toEqual(['stdit3_part1', 'stdit3_ST_0', 'stdit3_ST_1', 'stdit3_ST_2', 'stdit3_part2']);
    expect(velocity.cond).toHaveLength(480);
    // Channel c of batch b is b·100 + c + 3 (three blocks ran): the first 4 channels of each row.
    expect([0, 120, 240, 360].map((k) => velocity.cond[k])).toEqual([3, 4, 5, 6]);
    expect([0, 120, 240, 360].map((k) => velocity.uncond[k])).toEqual([103, 104, 105, 106]);
    const part2 = backend.runs[4]!.inputs;
    expect(Object.keys(part2).sort()).toEqual(['padH', 'padW', 't', 'x', 'z_in']);
    expect(part2.t!.dims).toEqual([2, C]); // outT, not the scalar timestep
  });

  it('gives every block the block-diagonal mask [1,1,2N,2L]; TDTM steps use TDTM blocks and ⌊T/2⌋·S rows', async () => {
    const { backend, stdit } = runner({ frames: 5, height: 4, width: 6 });
    await stdit.predict(new Float32Array(480), { index: 0, steps: 30, t: 1000, variant: 'st' });
    await stdit.predict(new Float32Array(480), { index: 1, steps: 30, t: 900, variant: 'tdtm' });
    const st = backend.runs.find((run) => run.block === 'stdit3_ST_1')!.inputs;
    expect(st.attn!.dims).toEqual([1, 1, 2 * 5 * 6, 2 * L]); // N = T·(H/2)·(W/2) = 30
    const attn = st.attn!.data as Float32Array;
    expect([...attn.subarray(0, 2 * L)]).toEqual([0, 0, 0, MASKED, MASKED, MASKED]);
    expect([...attn.subarray(attn.length - 2 * L)]).toEqual([MASKED, MASKED, MASKED, 0, 0, 0]);
    expect(Object.keys(st).sort()).toEqual(['T', 'attn', 't_mlp', 'x', 'y']);
    const tdtmRuns = backend.runs.slice(5).map((run) => run.block);
    expect(tdtmRuns).toEqual(['stdit3_part1', 'stdit3_TDTM_0', 'stdit3_TDTM_1', 'stdit3_TDTM_2', 'stdit3_part2']);
    expect(backend.runs[6]!.inputs.attn!.dims).toEqual([1, 1, 2 * 2 * 6, 2 * L]); // ⌊5/2⌋·S = 12
  });

  it('loads the later steps\' variant ahead: ST blocks from the first TDTM step when a later step runs them, else never', async () => {
    const stBlocks = ['stdit3_ST_0', 'stdit3_ST_1', 'stdit3_ST_2'];
    const merging = runner({ frames: 5, height: 4, width: 6 });
    const tdtmOnly = new Set(['tdtm'] as const);
    await merging.stdit.predict(new Float32Array(480), { index: 0, steps: 30, t: 1000, variant: 'tdtm', laterVariants: tdtmOnly });
    expect(merging.backend.loads.filter((name) => stBlocks.includes(name))).toEqual([]);

    const { backend, stdit } = runner({ frames: 5, height: 4, width: 6 });
    await stdit.predict(new Float32Array(480), { index: 0, steps: 30, t: 1000, variant: 'tdtm', laterVariants: new Set(['tdtm', 'st'] as const) });
    expect(backend.loads.filter((name) => stBlocks.includes(name)).sort()).toEqual(stBlocks);
    expect(backend.runs.filter((run) => stBlocks.includes(run.block))).toEqual([]); // loaded, not yet run

    const onlySt = runner({ frames: 5, height: 4, width: 6 });
    await onlySt.stdit.predict(new Float32Array(480), { index: 0, steps: 30, t: 1000, variant: 'st', laterVariants: new Set(['st'] as const) });
    expect(onlySt.backend.loads.filter((name) => name.includes('TDTM'))).toEqual([]);
  });

  it('pads an odd latent height/width by one (padH/padW = 1) and sizes the mask with the padded grid', async () => {
    const { backend, stdit } = runner({ frames: 5, height: 3, width: 5 });
    const velocity = await stdit.predict(new Float32Array(4 * 5 * 3 * 5), { index: 0, steps: 30, t: 1000, variant: 'st' });
    const part1 = backend.runs[0]!.inputs;
    expect([part1.padH!.data[0], part1.padW!.data[0]]).toEqual([1n, 1n]);
    expect(backend.runs[1]!.inputs.attn!.dims).toEqual([1, 1, 2 * 5 * 2 * 3, 2 * L]); // (3+1)/2 · (5+1)/2 = 6 per frame
    expect(velocity.cond).toHaveLength(300);
  });
});

describe('STDiT runner on the real tiny-model blocks', () => {
  it('runs odd latent H/W (padH = padW = 1) and odd T through both ST and TDTM blocks', async () => {
    const tiny = await tinyBlocks('stdit');
    try {
      const reference = await readGolden('sampler-opensora.json'); // a real text encoding
      const latent = { channels: 4, frames: 5, height: 5, width: 7 };
      const runner = new StditRunner({
        provider: tiny.provider,
        depth: tiny.model.architecture.stdit.depth,
        latent,
        text: {
          y: reference.inputs.y as Float32Tensor,
          yNull: reference.inputs.yNull as Float32Tensor,
          mask: reference.inputs.mask as Float32Tensor,
        },
        fps: 24,
        width: 56,
        height: 40,
      });
      const z = gaussianNoise(3, 4 * 5 * 5 * 7);
      const st = await runner.predict(z, { index: 0, steps: 30, t: 1000, variant: 'st' });
      const tdtm = await runner.predict(z, { index: 0, steps: 30, t: 1000, variant: 'tdtm' });
      for (const velocity of [st.cond, st.uncond, tdtm.cond, tdtm.uncond]) {
        expect(velocity).toHaveLength(z.length);
        expect(velocity.every(Number.isFinite)).toBe(true);
      }
      expect(maxRelativeError(tdtm.cond, st.cond)).toBeGreaterThan(1e-4); // merged attention is not the same model
      expect(maxRelativeError(st.uncond, st.cond)).toBeGreaterThan(1e-4); // the two CFG rows see different captions
    } finally {
      await tiny.close();
    }
  });
});
