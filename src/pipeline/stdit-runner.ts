import { SoraError } from '../errors.js';
import { isResident, type ResidentTensor, type RunInputs, type Tensor } from '../runtime/backend.js';
import type { TextEncoding } from '../text/text-encoder.js';
import { blockDiagonalMask, queryRowsPerSample, type BlockVariant, type PatchGrid } from './attention-mask.js';
import { runBlock, type BlockProvider } from './block-provider.js';
import { latentDims, latentLength, type LatentShape } from './latent.js';
import type { CfgVelocity, Denoiser, DenoiserStep, StackInput } from './sampler.js';
import { ResidentSet } from './resident-set.js';
import { blockName, float32Output, float32Tensor, int64Scalar, residentFloat32Output, type Float32Tensor } from './tensors.js';

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

/** Inputs of part1 that are the same at every step of a generation. */
const PART1_CONSTANTS = ['y', 'mask', 'fps', 'height', 'width', 'padH', 'padW'] as const;
/** Outputs of part1 the blocks and part2 take: they stay where part1 ran. */
const PART1_KEPT = ['x', 'outY', 't_mlp', 'T', 'outT'] as const;
/** With a policy that may reuse the stack, the stack input and t_mlp come to the host instead: the policy reads them. */
const PART1_KEPT_REUSING = ['outY', 'T', 'outT'] as const;

type Part1Constants = Record<(typeof PART1_CONSTANTS)[number], ResidentTensor>;
/** What every block of a step takes besides `x`. */
type StackConstants = Record<'y' | 't_mlp' | 'attn' | 'T', ResidentTensor>;
/** The stack's output (part2's `x`) and part1's `outT`, which part2 takes too. */
interface StackResult {
  readonly x: Tensor | ResidentTensor;
  readonly outT: ResidentTensor;
}

/**
 * STDiT3 as a CFG denoiser: part1 → depth block pairs → part2 on the batch-2 layout [z; z] with captions
 * [y; y_null], conditional first.
 *
 * Only what the host needs crosses to where the blocks run: per generation the conditioning (captions, masks,
 * sizes) once, per step the latent batch and the timestep in and part2's output back. Each block's output stays
 * where it was computed and is the next block's input (consumed by it); part1's outputs serve the whole step.
 * Call close() after the last step.
 */
export class StditRunner implements Denoiser {
  private readonly host: Record<(typeof PART1_CONSTANTS)[number], Tensor>;
  private readonly grid: PatchGrid;
  private readonly validTokens: number;
  /** Resident for the whole generation: part1's constants and the attention mask of each variant used. */
  private readonly generation: ResidentSet;
  private constants: Promise<Part1Constants> | undefined;
  private readonly masks = new Map<BlockVariant, Promise<ResidentTensor>>();
  private readonly preloaded = new Set<BlockVariant>();
  /** Output − input of the block stack at the last step that ran it, both CFG rows (only when a step may reuse it). */
  private residual: Float32Array | undefined;

  constructor(private readonly options: StditRunnerOptions) {
    const { text, latent } = options;
    const captions = new Float32Array(2 * text.y.data.length);
    captions.set(text.y.data);
    captions.set(text.yNull.data, text.y.data.length);
    this.validTokens = text.mask.data.reduce((sum, valid) => sum + valid, 0);
    // Patches are 2×2: an odd latent side is zero-padded by one on the bottom/right inside part1 and cropped in part2.
    const padH = latent.height % 2;
    const padW = latent.width % 2;
    this.grid = { frames: latent.frames, paddedHeight: latent.height + padH, paddedWidth: latent.width + padW };
    this.host = {
      y: float32Tensor([2, ...text.y.dims.slice(1)], captions),
      mask: text.mask,
      fps: float32Tensor([1], Float32Array.of(options.fps)),
      height: float32Tensor([1], Float32Array.of(options.height)),
      width: float32Tensor([1], Float32Array.of(options.width)),
      padH: int64Scalar(padH),
      padW: int64Scalar(padW),
    };
    this.generation = new ResidentSet(options.provider.backend);
  }

  async predict(z: Float32Array, step: DenoiserStep): Promise<CfgVelocity> {
    const { provider, latent } = this.options;
    this.preload(step.variant);
    for (const later of step.laterVariants ?? []) this.preload(later);
    const constants = await this.uploadConstants();
    const attn = await this.mask(step.variant);
    const size = latentLength(latent);
    const batch = new Float32Array(2 * size);
    batch.set(z);
    batch.set(z, size);
    const resident = new ResidentSet(provider.backend);
    try {
      const zIn = await resident.upload(float32Tensor(latentDims(latent, 2), batch), true);
      const t = float32Tensor([2], Float32Array.of(step.t, step.t));
      const part1Inputs = { ...constants, z_in: zIn, t };
      const { x, outT } =
        step.reuseBlocks === undefined
          ? await this.part1AndStack(part1Inputs, attn, step, resident)
          : await this.part1AndStackOrReuse(part1Inputs, attn, step, resident);
      const { padH, padW } = constants;
      const consume = isResident(x) ? ['x'] : [];
      const out = await runBlock(provider, STDIT_PART2, { z_in: zIn, x, t: outT, padH, padW }, STDIT_PART1, { consume });
      return splitCfgOutput(float32Output(out, STDIT_PART2, 'output').data, size);
    } finally {
      await resident.release();
    }
  }

  private async part1AndStack(part1Inputs: RunInputs, attn: ResidentTensor, step: DenoiserStep, resident: ResidentSet): Promise<StackResult> {
    const first = await runBlock(this.options.provider, STDIT_PART1, part1Inputs, stditBlock(step.variant, 0), { keep: PART1_KEPT });
    const { x, outY, t_mlp, T, outT } = resident.kept(first, STDIT_PART1, PART1_KEPT);
    return { x: await this.runStack(x, { y: outY, t_mlp, attn, T }, step, resident), outT };
  }

  private async part1AndStackOrReuse(part1Inputs: RunInputs, attn: ResidentTensor, step: DenoiserStep, resident: ResidentSet): Promise<StackResult> {
    const first = await runBlock(this.options.provider, STDIT_PART1, part1Inputs, stditBlock(step.variant, 0), { keep: PART1_KEPT_REUSING });
    const { outY, T, outT } = resident.kept(first, STDIT_PART1, PART1_KEPT_REUSING);
    const input = { x: float32Output(first, STDIT_PART1, 'x'), tMlp: float32Output(first, STDIT_PART1, 't_mlp') };
    return { x: await this.runOrReuse(input, { y: outY, attn, T }, step, resident), outT };
  }

  /**
   * The depth block pairs on part1's tokens `x0` (consumed when resident). Each output stays where it was computed
   * for the next block; the last comes back to the host when `toHost`.
   */
  private async runStack(
    x0: Tensor | ResidentTensor,
    stack: StackConstants,
    step: DenoiserStep,
    resident: ResidentSet,
    { toHost = false } = {},
  ): Promise<Tensor | ResidentTensor> {
    const { provider, depth } = this.options;
    let x: Tensor | ResidentTensor = x0;
    for (let i = 0; i < depth; i++) {
      const name = stditBlock(step.variant, i);
      const last = i + 1 === depth;
      const next = last ? STDIT_PART2 : stditBlock(step.variant, i + 1);
      const keep = last && toHost ? [] : ['output'];
      const out = await runBlock(provider, name, { ...stack, x }, next, { keep, consume: isResident(x) ? ['x'] : [] });
      x = keep.length === 0 ? float32Output(out, name, 'output') : resident.add(residentFloat32Output(out, name, 'output'));
    }
    return x;
  }

  /**
   * Step caching: part1 returned the stack's input and t_mlp to the host for the policies to judge. A reused step
   * hands part2 input + cached residual; a step that runs the blocks sends t_mlp once, the input with block 0's run,
   * and takes the stack's output back with the last block's run to cache the new residual: no round trip of its own.
   */
  private async runOrReuse(
    input: { readonly x: Float32Tensor; readonly tMlp: Float32Tensor },
    stack: Omit<StackConstants, 't_mlp'>,
    step: DenoiserStep,
    resident: ResidentSet,
  ): Promise<Tensor> {
    const { x, tMlp } = input;
    const stackInput: StackInput = { x: x.data, tMlp: tMlp.data, channels: x.dims[x.dims.length - 1]! };
    if (step.reuseBlocks!(stackInput)) {
      if (this.residual === undefined) throw new SoraError('INTERNAL', `step ${step.index}: no block residual cached to reuse`);
      const reused = new Float32Array(x.data.length);
      for (let k = 0; k < reused.length; k++) reused[k] = x.data[k]! + this.residual[k]!;
      return float32Tensor(x.dims, reused);
    }
    const t_mlp = await resident.upload(tMlp);
    // toHost: the last block's output came back to the host, as float32 (float32Output checked it).
    const output = (await this.runStack(x, { ...stack, t_mlp }, step, resident, { toHost: true })) as Float32Tensor;
    // One buffer for the generation: every step's residual has the stack's shape.
    const residual = this.residual?.length === output.data.length ? this.residual : new Float32Array(output.data.length);
    for (let k = 0; k < residual.length; k++) residual[k] = output.data[k]! - x.data[k]!;
    this.residual = residual;
    return output;
  }

  /**
   * Each variant's blocks are named once, at the first step that runs it or has it in its later steps: a variant the
   * schedule never uses (ST blocks when TDTM merges every step) is never loaded.
   */
  private preload(variant: BlockVariant): void {
    if (this.preloaded.has(variant)) return;
    this.preloaded.add(variant);
    const stack = Array.from({ length: this.options.depth }, (_, i) => stditBlock(variant, i));
    this.options.provider.preload?.([STDIT_PART1, ...stack, STDIT_PART2]);
  }

  /** Releases what the generation kept resident (conditioning, masks). */
  async close(): Promise<void> {
    this.residual = undefined;
    this.constants = undefined;
    this.masks.clear();
    await this.generation.release();
  }

  private uploadConstants(): Promise<Part1Constants> {
    this.constants ??= (async () => {
      const uploaded: Partial<Part1Constants> = {};
      for (const name of PART1_CONSTANTS) uploaded[name] = await this.generation.upload(this.host[name]);
      return uploaded as Part1Constants;
    })();
    return this.constants;
  }

  /** Built and uploaded on first use per variant: every step of a generation has the same grid and caption length. */
  private mask(variant: BlockVariant): Promise<ResidentTensor> {
    let mask = this.masks.get(variant);
    if (mask === undefined) {
      mask = this.generation.upload(blockDiagonalMask(queryRowsPerSample(this.grid, variant), this.validTokens), true);
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
