/**
 * The real STDiT blocks of the shipped tiny model, driven with the stored inputs of the sampler golden data
 * (a real prompt's T5 encoding and seeded noise), so policy tests sample exactly what `generate` would.
 */
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { blockSource, loadModel, type Model } from '../../src/model/manifest.js';
import { ResidentBlockProvider, type BlockProvider } from '../../src/pipeline/block-provider.js';
import type { CfgVelocity, Denoiser, DenoiserStep, StepPolicy } from '../../src/pipeline/sampler.js';
import { StditRunner } from '../../src/pipeline/stdit-runner.js';
import type { Float32Tensor } from '../../src/pipeline/tensors.js';
import { samplingTimesteps } from '../../src/pipeline/timesteps.js';
import { wrapBackend, type Backend, type BlockHandle, type RunInputs } from '../../src/runtime/backend.js';
import { OnnxBackend } from '../../src/runtime/onnx-backend.js';
import type { TextEncoding } from '../../src/text/text-encoder.js';
import { ROOT } from './cli.js';
import { readGolden } from './golden.js';

export interface TinyStdit {
  readonly model: Model;
  readonly text: TextEncoding;
  /** Seeded noise [1, 4, 5, 8, 8]. */
  readonly noise: Float32Tensor;
  readonly video: { readonly fps: number; readonly width: number; readonly height: number; readonly numFrames: number };
  readonly cfgScale: number;
}

export async function loadTinyStdit(): Promise<TinyStdit> {
  const model = await loadModel(join(ROOT, 'models', 'tiny'));
  const golden = await readGolden('sampler-opensora.json');
  const meta = golden.meta as { fps: number; width: number; height: number; numFrames: number; cfgScale: number };
  const text = {
    y: golden.inputs.y as Float32Tensor,
    yNull: golden.inputs.yNull as Float32Tensor,
    mask: golden.inputs.mask as Float32Tensor,
  };
  const video = { fps: meta.fps, width: meta.width, height: meta.height, numFrames: meta.numFrames };
  return { model, text, noise: golden.inputs.z as Float32Tensor, video, cfgScale: meta.cfgScale };
}

/**
 * For a test file or describe block: the tiny STDiT and an ONNX backend, made before its tests and closed after them.
 * Read `suite.tiny` and `suite.backend` inside the tests.
 */
export function tinyStditSuite(): { readonly tiny: TinyStdit; readonly backend: OnnxBackend } {
  const suite = {} as { tiny: TinyStdit; backend: OnnxBackend };
  beforeAll(async () => {
    suite.tiny = await loadTinyStdit();
    suite.backend = new OnnxBackend();
  });
  afterAll(() => suite.backend.close());
  return suite;
}

export function stditProvider(tiny: TinyStdit, backend: Backend): ResidentBlockProvider {
  const blocks = tiny.model.blocks.filter((block) => block.component === 'stdit');
  return new ResidentBlockProvider(backend, new Map(blocks.map((block) => [block.name, blockSource(block)])));
}

/** The schedule of `steps` steps for the golden's video size. */
export function tinyTimesteps(tiny: TinyStdit, steps: number): Float32Array {
  return samplingTimesteps(steps, 'opensora', tiny.video);
}

/** A runner over the first `frames` latent frames of the stored noise, and that noise. */
export function tinyRunner(
  tiny: TinyStdit,
  provider: BlockProvider,
  frames = tiny.noise.dims[2]!,
): { runner: StditRunner; noise: Float32Array } {
  const [, channels = 0, storedFrames = 0, height = 0, width = 0] = tiny.noise.dims;
  const plane = height * width;
  const noise = new Float32Array(channels * frames * plane);
  for (let c = 0; c < channels; c++) {
    const from = c * storedFrames * plane;
    noise.set(tiny.noise.data.subarray(from, from + frames * plane), c * frames * plane);
  }
  const runner = new StditRunner({
    provider,
    depth: tiny.model.architecture.stdit.depth,
    latent: { channels, frames, height, width },
    text: tiny.text,
    fps: tiny.video.fps,
    width: tiny.video.width,
    height: tiny.video.height,
  });
  return { runner, noise };
}

/** Wraps a real denoiser and keeps a copy of every z it is called with. */
export class ObservedDenoiser implements Denoiser {
  readonly inputs: Float32Array[] = [];
  readonly steps: DenoiserStep[] = [];

  constructor(private readonly inner: Denoiser) {}

  predict(z: Float32Array, step: DenoiserStep): Promise<CfgVelocity> {
    this.inputs.push(Float32Array.from(z));
    this.steps.push(step);
    return this.inner.predict(z, step);
  }
}

/** A policy that decides nothing and keeps a copy of every step's CFG-combined drift. */
export function driftObserver(): StepPolicy & { readonly drifts: Float32Array[] } {
  const drifts: Float32Array[] = [];
  return {
    name: 'observer',
    drifts,
    leapAfter: (_step, drift) => {
      drifts.push(Float32Array.from(drift));
      return false;
    },
  };
}

/** Wraps the real provider and backend: records the name of every acquired block and the inputs of every run. */
export class RecordingProvider implements BlockProvider {
  readonly acquired: string[] = [];
  readonly runs: { block: string; inputs: RunInputs }[] = [];
  readonly backend: Backend;

  constructor(private readonly inner: BlockProvider) {
    const real = inner.backend;
    const runs = this.runs;
    this.backend = wrapBackend(real, {
      async run(handle: BlockHandle, inputs: RunInputs, options) {
        runs.push({ block: handle.name, inputs });
        return real.run(handle, inputs, options);
      },
    });
  }

  acquire(name: string, next?: string): Promise<BlockHandle> {
    this.acquired.push(name);
    return this.inner.acquire(name, next);
  }

  release(name: string): Promise<void> {
    return this.inner.release(name);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
