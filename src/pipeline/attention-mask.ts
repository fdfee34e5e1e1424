import type { Float32Tensor } from './tensors.js';
import { float32Tensor } from './tensors.js';

/** −FLT_MAX, the value the authors' masks use; −Infinity would make a fully masked row NaN after softmax. */
export const MASKED = -3.4028234663852886e38;

export type BlockVariant = 'st' | 'tdtm';

/** Latent size as the STDiT blocks see it: padded H/W (even), frames T. */
export interface PatchGrid {
  readonly frames: number;
  readonly paddedHeight: number;
  readonly paddedWidth: number;
}

/**
 * Query rows per CFG sample of a block's cross-attention: every token (N = T·S) for ST blocks, the ⌊T/2⌋ merged
 * frame pairs for TDTM blocks.
 */
export function queryRowsPerSample(grid: PatchGrid, variant: BlockVariant): number {
  const patchesPerFrame = (grid.paddedHeight / 2) * (grid.paddedWidth / 2);
  const frames = variant === 'st' ? grid.frames : Math.floor(grid.frames / 2);
  return frames * patchesPerFrame;
}

/**
 * The block-diagonal cross-attention mask (replaces xformers' BlockDiagonalMask): the first `rowsPerSample` query
 * rows (conditional sample) see only the first `validTokens` caption rows, the next `rowsPerSample` (unconditional)
 * only the last `validTokens`. Shape [1,1,2A,2L]; one head, which the blocks broadcast over all heads.
 */
export function blockDiagonalMask(rowsPerSample: number, validTokens: number): Float32Tensor {
  const columns = 2 * validTokens;
  const data = new Float32Array(2 * rowsPerSample * columns);
  const conditionalRow = new Float32Array(columns).fill(MASKED, validTokens);
  const unconditionalRow = new Float32Array(columns).fill(MASKED, 0, validTokens);
  for (let row = 0; row < 2 * rowsPerSample; row++) {
    data.set(row < rowsPerSample ? conditionalRow : unconditionalRow, row * columns);
  }
  return float32Tensor([1, 1, 2 * rowsPerSample, columns], data);
}
