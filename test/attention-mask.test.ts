import { describe, expect, it } from 'vitest';
import { MASKED, blockDiagonalMask, queryRowsPerSample } from '../src/pipeline/attention-mask.js';

describe('block-diagonal cross-attention mask', () => {
  it('has shape [1,1,2A,2L] and lets each CFG half see only its own caption rows', () => {
    const A = 3;
    const L = 2;
    const mask = blockDiagonalMask(A, L);
    expect(mask.dims).toEqual([1, 1, 6, 4]);
    const rows = Array.from({ length: 6 }, (_, r) => [...mask.data.subarray(r * 4, r * 4 + 4)]);
    const open = 0;
    for (const row of rows.slice(0, A)) expect(row).toEqual([open, open, MASKED, MASKED]);
    for (const row of rows.slice(A)) expect(row).toEqual([MASKED, MASKED, open, open]);
  });

  it('uses −FLT_MAX, not −Infinity', () => {
    expect(MASKED).toBe(-3.4028234663852886e38);
    expect(Math.fround(MASKED)).toBe(MASKED);
    expect(blockDiagonalMask(1, 1).data[1]).toBe(MASKED);
  });

  it('works for any L, including 1 and the full 300', () => {
    for (const L of [1, 7, 150, 300]) {
      const mask = blockDiagonalMask(5, L);
      expect(mask.dims).toEqual([1, 1, 10, 2 * L]);
      expect(mask.data.filter((v) => v === 0)).toHaveLength(10 * L);
    }
  });

  it('has N = T·S query rows per sample for ST blocks, ⌊T/2⌋·S for TDTM blocks', () => {
    // 256² 68 frames: latent 20×32×32 → S = 16·16 = 256, N = 5120 (reference §A.3).
    const grid = { frames: 20, paddedHeight: 32, paddedWidth: 32 };
    expect(queryRowsPerSample(grid, 'st')).toBe(5120);
    expect(queryRowsPerSample(grid, 'tdtm')).toBe(2560);
    // Odd T and a padded odd latent side (27 → 28): S = 10·14.
    const odd = { frames: 5, paddedHeight: 20, paddedWidth: 28 };
    expect(queryRowsPerSample(odd, 'st')).toBe(700);
    expect(queryRowsPerSample(odd, 'tdtm')).toBe(280);
  });
});
