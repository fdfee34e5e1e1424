/**
 * FLOPs of one call of a block, for the efficiency column of `bench`: matrix products only (2 FLOPs per
 * multiply-add), as stdit-flops.ts counts them. Null where no count is kept: the token embedding and final norm of
 * T5 (lookups and norms, no products) and the VAE parts (convolutions over changing grids, not counted yet).
 */
import * as z from 'zod';
import type { Model } from '../model/manifest.js';
import { latentShapeFor } from '../pipeline/latent.js';
import type { VideoSize } from '../pipeline/timesteps.js';
import { outerFlops, stepFlops, type StditFlopShape } from './stdit-flops.js';

const STDIT_PAIR = /^stdit3_(ST|TDTM)_\d+$/;
const T5_LAYER = /^t5block-layer\d+$/;

const count = z.number().positive();
// The manifest keeps the architecture's other entries untyped; these are the ones the counts need.
const StditNumbers = z.object({
  hidden_size: count,
  mlp_ratio: count,
  depth: count,
  caption_channels: count,
  in_channels: count,
  out_channels: count,
  patch_size: z.tuple([count, count, count]),
  freq_embed_size: count,
});
const T5Numbers = z.object({ d_model: count, d_kv: count, d_ff: count, num_heads: count });

/** Null for a model whose manifest lacks one of the numbers. */
export function stditFlopShape(model: Model, video: VideoSize, captionTokens: number): StditFlopShape | null {
  const parsed = StditNumbers.safeParse(model.architecture.stdit);
  if (!parsed.success) return null;
  const a = parsed.data;
  const latent = latentShapeFor(video);
  const [, ph, pw] = a.patch_size;
  return {
    hidden: a.hidden_size,
    mlpRatio: a.mlp_ratio,
    depth: a.depth,
    captionChannels: a.caption_channels,
    inChannels: a.in_channels,
    outChannels: a.out_channels,
    patch: [ph, pw],
    freqEmbedSize: a.freq_embed_size,
    frames: latent.frames,
    patchesPerFrame: Math.ceil(latent.height / ph) * Math.ceil(latent.width / pw),
    captionTokens,
  };
}

/** One T5 encoder layer over the padded sequence (the text encoder always runs on maxLength tokens). */
function t5LayerFlops(model: Model): number | null {
  const parsed = T5Numbers.safeParse(model.architecture.t5);
  if (!parsed.success) return null;
  const t5 = parsed.data;
  const n = model.tokenizer.maxLength;
  const inner = t5.num_heads * t5.d_kv;
  const projections = 4 * 2 * n * t5.d_model * inner; // q, k, v, o
  const scores = 4 * n * n * inner;
  const feedForward = 3 * 2 * n * t5.d_model * t5.d_ff; // gated: wi_0, wi_1, wo
  return projections + scores + feedForward;
}

/** `captionTokens`: the valid prompt tokens of the generation (EOS included). */
export function blockFlopsPerCall(name: string, model: Model, video: VideoSize, captionTokens: number): number | null {
  if (T5_LAYER.test(name)) return t5LayerFlops(model);
  const shape = stditFlopShape(model, video, captionTokens);
  if (shape === null) return null;
  const pair = STDIT_PAIR.exec(name);
  if (pair !== null) return stepFlops(shape, pair[1] === 'ST' ? 'st' : 'tdtm').pair.total;
  if (name === 'stdit3_part1') return outerFlops(shape).part1;
  if (name === 'stdit3_part2') return outerFlops(shape).part2;
  return null;
}
