import type { NamedTensors } from '../runtime/backend.js';
import type { TextEncoding } from '../text/text-encoder.js';
import { blockDiagonalMask, queryRowsPerSample, type BlockVariant, type PatchGrid } from './attention-mask.js';
import { runBlock, type BlockProvider } from './block-provider.js';
import { latentDims, latentLength, type LatentShape } from './latent.js';
import type { CfgVelocity, Denoiser, DenoiserStep } from './sampler.js';
import { blockName, float32Output, float32Tensor, int64Scalar, outputTensor, type Float32Tensor } from './tensors.js';

const STDIT_PART1 = blockName('stdit-part1');
const STDIT_PART2 = blockName('stdit-part2');
const stditBlock = (variant: BlockVariant, index: number): string =>
  blockName(variant === 'st' ? 'stdit-st' : 'stdit-tdtm', index);

export interface StditRunnerOptions {
  readonly provider: BlockProvider;
  /** Number of spatial+temporal block pairs. */
  readonly depth: number;
  readonly latent: LatentShape;
  readonly text: TextEncoding;
  /** Conditioning: frame rate and pixel size of the video. */
  readonly fps: number;
  readonly width: number;
  readonly height: number;
}

/**
 * STDiT3 as a CFG denoiser: part1 → depth block pairs → part2 on the batch-2 layout [z; z] with captions
 * [y; y_null], conditional first.
 */
export class StditRunner implements Denoiser {
  private readonly captions: Float32Tensor;
  private readonly conditioning: NamedTensors;
  private readonly padding: NamedTensors;
  private readonly grid: PatchGrid;
  private readonly validTokens: number;
  private readonly masks = new Map<BlockVariant, Float32Tensor>();

  constructor(private readonly options: StditRunnerOptions) {
    const { text, latent } = options;
    const captions = new Float32Array(2 * text.y.data.length);
    captions.set(text.y.data);
    captions.set(text.yNull.data, text.y.data.length);
    this.captions = float32Tensor([2, ...text.y.dims.slice(1)], captions);
    this.validTokens = text.mask.data.reduce((sum, valid) => sum + valid, 0);
    // Patches are 2×2: an odd latent side is zero-padded by one on the bottom/right inside part1 and cropped in part2.
    const padH = latent.height % 2;
    const padW = latent.width % 2;
    this.grid = { frames: latent.frames, paddedHeight: latent.height + padH, paddedWidth: latent.width + padW };
    this.conditioning = {
      mask: text.mask,
      fps: float32Tensor([1], Float32Array.of(options.fps)),
      height: float32Tensor([1], Float32Array.of(options.height)),
      width: float32Tensor([1], Float32Array.of(options.width)),
    };
    this.padding = { padH: int64Scalar(padH), padW: int64Scalar(padW) };
  }

  async predict(z: Float32Array, step: DenoiserStep): Promise<CfgVelocity> {
    const { provider, depth, latent } = this.options;
    const size = latentLength(latent);
    const batch = new Float32Array(2 * size);
    batch.set(z);
    batch.set(z, size);
    const zIn = float32Tensor(latentDims(latent, 2), batch);

    const first = await runBlock(
      provider,
      STDIT_PART1,
      {
        z_in: zIn,
        t: float32Tensor([2], Float32Array.of(step.t, step.t)),
        y: this.captions,
        ...this.conditioning,
        ...this.padding,
      },
      stditBlock(step.variant, 0),
    );
    const blockInputs = {
      y: float32Output(first, STDIT_PART1, 'outY'),
      t_mlp: float32Output(first, STDIT_PART1, 't_mlp'),
      attn: this.mask(step.variant),
      T: outputTensor(first, STDIT_PART1, 'T'),
    };
    let x = float32Output(first, STDIT_PART1, 'x');
    for (let i = 0; i < depth; i++) {
      const name = stditBlock(step.variant, i);
      const next = i + 1 < depth ? stditBlock(step.variant, i + 1) : STDIT_PART2;
      x = float32Output(await runBlock(provider, name, { x, ...blockInputs }, next), name, 'output');
    }
    const out = await runBlock(
      provider,
      STDIT_PART2,
      { z_in: zIn, x, t: float32Output(first, STDIT_PART1, 'outT'), ...this.padding },
      STDIT_PART1,
    );
    return splitCfgOutput(float32Output(out, STDIT_PART2, 'output').data, size);
  }

  /** Built on first use per variant: every step of a generation has the same grid and caption length. */
  private mask(variant: BlockVariant): Float32Tensor {
    let mask = this.masks.get(variant);
    if (mask === undefined) {
      mask = blockDiagonalMask(queryRowsPerSample(this.grid, variant), this.validTokens);
      this.masks.set(variant, mask);
    }
    return mask;
  }
}

/**
 * part2 returns [2, 8, T, H, W]: channels 0–3 are the velocity, 4–7 the learned sigma (unused by the sampler).
 * Batch row 0 is the conditional sample, row 1 the unconditional one.
 */
function splitCfgOutput(output: Float32Array, latentSize: number): CfgVelocity {
  const sample = output.length / 2;
  return {
    cond: output.slice(0, latentSize),
    uncond: output.slice(sample, sample + latentSize),
  };
}
