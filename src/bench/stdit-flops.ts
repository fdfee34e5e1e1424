/**
 * Analytic FLOPs of one STDiT3 denoising step (CFG batch 2) with ST or TDTM blocks, from the architecture numbers
 * and token counts (reference §A.3, §D). Matrix products only (2 FLOPs per multiply-add): norms, modulation,
 * softmax, RoPE and the pair averaging cost a few FLOPs per value against C per value for a product. So
 * ST/TDTM FLOPs is the speed-up bound where products dominate the time, as at the paper's width (C = 1152); a
 * narrow model (the tiny one, C = 64) spends much of its time in memory-bound work on the S×S attention scores,
 * which TDTM halves too, and can beat it.
 *
 * What TDTM shrinks (§D): self-attention (qkv, scores, projection) and cross-attention queries run on ⌊T/2⌋
 * merged frames; the caption keys/values, the MLP and part1/part2 stay at full size.
 */
import type { BlockVariant } from '../pipeline/attention-mask.js';

export interface StditFlopShape {
  readonly hidden: number;
  readonly mlpRatio: number;
  readonly depth: number;
  readonly captionChannels: number;
  readonly inChannels: number;
  readonly outChannels: number;
  /** Spatial patch (ph, pw); the temporal patch is 1. */
  readonly patch: readonly [number, number];
  readonly freqEmbedSize: number;
  /** Latent frames T. */
  readonly frames: number;
  /** Patches per frame S (padded). */
  readonly patchesPerFrame: number;
  /** Valid caption tokens L (EOS included); cross-attention keys are the 2L rows of both CFG captions. */
  readonly captionTokens: number;
}

export interface BlockPairFlops {
  readonly selfAttention: number;
  readonly crossAttention: number;
  readonly mlp: number;
  readonly total: number;
}

export interface StepFlops {
  readonly pair: BlockPairFlops;
  /** part1 + part2: embeddings and the final layer. */
  readonly outer: number;
  readonly step: number;
}

const BATCH = 2;

const linear = (rows: number, inputs: number, outputs: number): number => 2 * rows * inputs * outputs;

/** QKᵀ and the weighted sum of V: two products of queries × keys × dim. */
const attention = (queries: number, keys: number, dim: number): number => 4 * queries * keys * dim;

function blockFlops(shape: StditFlopShape, temporal: boolean, variant: BlockVariant): BlockPairFlops {
  const C = shape.hidden;
  const S = shape.patchesPerFrame;
  const F = variant === 'st' ? shape.frames : Math.floor(shape.frames / 2);
  const attended = BATCH * F * S;
  const keys = 2 * shape.captionTokens;
  const selfScores = temporal ? BATCH * S * attention(F, F, C) : BATCH * F * attention(S, S, C);
  const selfAttention = linear(attended, C, 3 * C) + selfScores + linear(attended, C, C);
  // Every query row is scored against all 2L caption rows; the block-diagonal mask only zeroes the other half.
  const crossAttention =
    linear(attended, C, C) + linear(keys, C, 2 * C) + attention(attended, keys, C) + linear(attended, C, C);
  const full = BATCH * shape.frames * S;
  const mlp = linear(full, C, shape.mlpRatio * C) + linear(full, shape.mlpRatio * C, C);
  return { selfAttention, crossAttention, mlp, total: selfAttention + crossAttention + mlp };
}

function sum(a: BlockPairFlops, b: BlockPairFlops): BlockPairFlops {
  return {
    selfAttention: a.selfAttention + b.selfAttention,
    crossAttention: a.crossAttention + b.crossAttention,
    mlp: a.mlp + b.mlp,
    total: a.total + b.total,
  };
}

/** part1 (patch, timestep, fps and caption embeddings) and part2 (final layer): the same for both variants. */
export function outerFlops(shape: StditFlopShape): { readonly part1: number; readonly part2: number } {
  const C = shape.hidden;
  const [ph, pw] = shape.patch;
  const tokens = BATCH * shape.frames * shape.patchesPerFrame;
  const patchEmbed = linear(tokens, shape.inChannels * ph * pw, C);
  const embedders = 2 * (linear(BATCH, shape.freqEmbedSize, C) + linear(BATCH, C, C)) + linear(BATCH, C, 6 * C);
  const caption = linear(BATCH * shape.captionTokens, shape.captionChannels, C) + linear(BATCH * shape.captionTokens, C, C);
  const finalLayer = linear(tokens, C, ph * pw * shape.outChannels);
  return { part1: patchEmbed + embedders + caption, part2: finalLayer };
}

export function stepFlops(shape: StditFlopShape, variant: BlockVariant): StepFlops {
  const pair = sum(blockFlops(shape, false, variant), blockFlops(shape, true, variant));
  const { part1, part2 } = outerFlops(shape);
  const outer = part1 + part2;
  return { pair, outer, step: outer + shape.depth * pair.total };
}
