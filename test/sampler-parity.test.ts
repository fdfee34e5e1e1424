import { describe, expect, it } from 'vitest';
import { sample } from '../src/pipeline/sampler.js';
import { StditRunner } from '../src/pipeline/stdit-runner.js';
import type { Float32Tensor } from '../src/pipeline/tensors.js';
import { samplingTimesteps, TIMESTEP_TRANSFORMS } from '../src/pipeline/timesteps.js';
import { maxRelativeError, readGolden, tinyBlocks } from './helpers/golden.js';

// The TypeScript sampler driving the real tiny-model ONNX blocks must reproduce the Python reference sampler
// (scripts/sora/reference_sampler.py with the PyTorch STDiT3) from the same stored noise and text encoding.
interface SamplerMeta {
  readonly height: number;
  readonly width: number;
  readonly numFrames: number;
  readonly fps: number;
  readonly steps: number;
  readonly cfgScale: number;
  readonly transform: string;
  readonly timesteps: number[];
}

describe.each(TIMESTEP_TRANSFORMS)('sampler parity with the Python reference (%s transform)', (transform) => {
  it('has the same timesteps and reaches the same final latent (max relative error ≤ 1e-3)', async () => {
    const golden = await readGolden(`sampler-${transform}.json`);
    const meta = golden.meta as unknown as SamplerMeta;
    expect(meta.transform).toBe(transform);
    const video = { numFrames: meta.numFrames, width: meta.width, height: meta.height };
    const timesteps = samplingTimesteps(meta.steps, transform, video);
    expect(maxRelativeError(timesteps, meta.timesteps)).toBeLessThan(1e-6);

    const z = golden.inputs.z as Float32Tensor;
    const [, channels = 0, frames = 0, height = 0, width = 0] = z.dims;
    const tiny = await tinyBlocks('stdit');
    try {
      const runner = new StditRunner({
        provider: tiny.provider,
        depth: tiny.model.architecture.stdit.depth,
        latent: { channels, frames, height, width },
        text: {
          y: golden.inputs.y as Float32Tensor,
          yNull: golden.inputs.yNull as Float32Tensor,
          mask: golden.inputs.mask as Float32Tensor,
        },
        fps: meta.fps,
        width: meta.width,
        height: meta.height,
      });
      const result = await sample(runner, z.data, { timesteps, cfgScale: meta.cfgScale });
      expect(result.evaluations).toBe(meta.steps);
      const expected = golden.outputs.latent as Float32Tensor;
      expect(maxRelativeError(result.latent, expected.data)).toBeLessThanOrEqual(1e-3); // measured: ~5e-6
      // Not vacuous: sampling moved the latent far from the noise it started at.
      expect(maxRelativeError(z.data, expected.data)).toBeGreaterThan(0.1);
    } finally {
      await tiny.close();
    }
  });
});
