import { describe, expect, it } from 'vitest';
import { VAE_SPATIAL_PARTS, VAE_TEMPORAL_PARTS } from '../src/model/contract.js';
import { ResidentBlockProvider } from '../src/pipeline/block-provider.js';
import { float32Tensor, type Float32Tensor } from '../src/pipeline/tensors.js';
import { decodeLatent, toByte } from '../src/pipeline/vae-decoder.js';
import type { NamedTensors } from '../src/runtime/backend.js';
import { FakeBackend, fakeSources } from './helpers/fake-backend.js';
import { readGolden, tinyBlocks } from './helpers/golden.js';

/**
 * Fake VAE parts with the real parts' shapes: the last temporal part turns 5 latent frames into 17 (frame f takes
 * the value of latent frame ⌊f·5/17⌋), the last spatial part turns 4 channels into 3 at 8× size (channel c takes
 * latent channel c). Intermediate parts pass through. This makes every output pixel traceable to its latent.
 */
function fakeVae(name: string, inputs: NamedTensors): NamedTensors {
  const input = inputs.latents as Float32Tensor;
  const [, channels = 0, frames = 0, h = 0, w = 0] = input.dims;
  if (name === 'vae_temporal_part3') {
    const out = new Float32Array(channels * 17 * h * w);
    for (let c = 0; c < channels; c++) {
      for (let f = 0; f < 17; f++) {
        const source = input.data.subarray((c * frames + Math.floor((f * 5) / 17)) * h * w, (c * frames + Math.floor((f * 5) / 17) + 1) * h * w);
        out.set(source, (c * 17 + f) * h * w);
      }
    }
    return { output: float32Tensor([1, channels, 17, h, w], out) };
  }
  if (name === 'vae_spatial_part4') {
    const H = 8 * h;
    const W = 8 * w;
    const out = new Float32Array(3 * frames * H * W);
    for (let c = 0; c < 3; c++) {
      for (let f = 0; f < frames; f++) {
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            out[((c * frames + f) * H + y) * W + x] = input.data[((c * frames + f) * h + (y >> 3)) * w + (x >> 3)]!;
          }
        }
      }
    }
    return { output: float32Tensor([1, 3, frames, H, W], out) };
  }
  return { output: input };
}

describe('VAE decoder chunking (fake VAE parts)', () => {
  it('runs the temporal decoder on 5-latent chunks and the 2-D decoder on 4-frame chunks, the last one shorter', async () => {
    const backend = new FakeBackend(fakeVae);
    const provider = new ResidentBlockProvider(backend, fakeSources([...VAE_TEMPORAL_PARTS, ...VAE_SPATIAL_PARTS]));
    const shape = { channels: 4, frames: 10, height: 2, width: 3 };
    // Latent value = channel·0.1 + latent frame·0.01 − 0.5: every frame and channel distinguishable.
    const latent = new Float32Array(4 * 10 * 6);
    for (let c = 0; c < 4; c++) for (let t = 0; t < 10; t++) latent.fill(c * 0.1 + t * 0.01 - 0.5, (c * 10 + t) * 6, (c * 10 + t + 1) * 6);

    const progress: number[] = [];
    const frames = await decodeLatent(provider, latent, shape, (done) => progress.push(done));

    const temporalInputs = backend.runs.filter((run) => run.block === 'vae_temporal_part1').map((run) => run.inputs.latents!.dims);
    expect(temporalInputs).toEqual([
      [1, 4, 5, 2, 3],
      [1, 4, 5, 2, 3],
    ]);
    const spatialInputs = backend.runs.filter((run) => run.block === 'vae_spatial_part1').map((run) => run.inputs.latents!.dims[2]);
    expect(spatialInputs).toEqual([4, 4, 4, 4, 4, 4, 4, 4, 2]); // 34 frames
    expect(backend.runs.map((run) => run.block).slice(0, 9)).toEqual([...VAE_TEMPORAL_PARTS]);
    expect(progress).toEqual([4, 8, 12, 16, 20, 24, 28, 32, 34]);

    expect(frames).toHaveLength(34);
    for (const [f, frame] of frames.entries()) {
      expect(frame).toHaveLength(16 * 24 * 3);
      const latentFrame = Math.floor(f / 17) * 5 + Math.floor(((f % 17) * 5) / 17);
      const expected = [0, 1, 2].map((c) => toByte(Math.fround(c * 0.1 + latentFrame * 0.01 - 0.5)));
      expect([...frame.subarray(0, 3)], `frame ${f}`).toEqual(expected);
      expect([...frame.subarray(frame.length - 3)], `frame ${f}`).toEqual(expected);
    }
    await provider.close();
    expect(backend.loads).toHaveLength(18); // each part loaded once and kept
  });
});

describe('pixel quantisation', () => {
  it("is Open-Sora's: clamp to [−1,1], (v+1)/2·255, +0.5, truncate", () => {
    expect(toByte(-1)).toBe(0);
    expect(toByte(1)).toBe(255);
    expect(toByte(-5)).toBe(0);
    expect(toByte(7)).toBe(255);
    expect(toByte(0)).toBe(128); // 127.5 + 0.5
    // The app's truncation would give 0 here; rounding gives 1.
    expect(toByte(2 * (0.6 / 255) - 1)).toBe(1);
    expect(toByte(2 * (0.4 / 255) - 1)).toBe(0);
  });
});

describe('VAE decoder on the real tiny-model parts', () => {
  it('reproduces the golden chain: the first 4 frames are the reference pixels, quantised', async () => {
    const tiny = await tinyBlocks('vae');
    try {
      const input = (await readGolden('vae_temporal_part1.json')).inputs.latents as Float32Tensor;
      const pixels = (await readGolden('vae_spatial_part4.json')).outputs.output as Float32Tensor; // [1,3,4,H,W]
      const [, channels = 0, latentFrames = 0, h = 0, w = 0] = input.dims;
      const frames = await decodeLatent(tiny.provider, input.data, { channels, frames: latentFrames, height: h, width: w });
      expect(frames).toHaveLength(17);
      const [, , count = 0, H = 0, W = 0] = pixels.dims;
      let worst = 0;
      for (let f = 0; f < count; f++) {
        for (let c = 0; c < 3; c++) {
          for (let p = 0; p < H * W; p++) {
            const expected = toByte(pixels.data[(c * count + f) * H * W + p]!);
            worst = Math.max(worst, Math.abs(frames[f]![p * 3 + c]! - expected));
          }
        }
      }
      // Float differences of ~1e-6 may move a value across a rounding boundary, never further.
      expect(worst).toBeLessThanOrEqual(1);
    } finally {
      await tiny.close();
    }
  });
});
