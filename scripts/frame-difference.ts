/**
 * How far one generation's frames are from another's: the largest difference of one 8-bit channel and the PSNR
 * over every frame. Used by test/models-compress.test.ts and scripts/bench-compression.ts to hold compressed
 * weights' videos against float32's, and by test/ci-dl.test.ts to hold mapped weights' against copied ones'.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

export interface FrameDifference {
  readonly frames: number;
  readonly maxAbs: number;
  /** Share of the 8-bit values that differ at all. */
  readonly differing: number;
  /** Infinity for identical frames. */
  readonly psnr: number;
}

/** The RGB bytes of every PNG in a folder (`generate --format frames`), in name order. */
export async function readPngFrames(folder: string): Promise<Buffer[]> {
  const names = (await readdir(folder)).filter((name) => name.endsWith('.png')).sort();
  return Promise.all(names.map((name) => sharp(join(folder, name)).raw().toBuffer()));
}

export function frameDifference(reference: readonly Buffer[], other: readonly Buffer[]): FrameDifference {
  if (other.length !== reference.length) throw new Error(`${other.length} frames against ${reference.length}`);
  let squares = 0;
  let count = 0;
  let maxAbs = 0;
  let differing = 0;
  reference.forEach((frame, index) => {
    const against = other[index]!;
    if (against.length !== frame.length) throw new Error(`frame ${index}: ${against.length} bytes against ${frame.length}`);
    for (let i = 0; i < frame.length; i += 1) {
      const difference = frame[i]! - against[i]!;
      squares += difference * difference;
      maxAbs = Math.max(maxAbs, Math.abs(difference));
      if (difference !== 0) differing += 1;
      count += 1;
    }
  });
  return { frames: reference.length, maxAbs, differing: differing / count, psnr: squares === 0 ? Infinity : 10 * Math.log10((255 * 255 * count) / squares) };
}
