import { FRAMES_PER_CHUNK, LATENT_CHANNELS, LATENT_FRAMES_PER_CHUNK, SPATIAL_FACTOR } from '../model/io-contract.js';
import type { VideoSize } from './timesteps.js';

/** The Open-Sora VAE v1.2 geometry (src/model/io-contract.ts): 17 frames ↔ 5 latent frames, 8× spatial, 4 channels. */
export const LATENTS_PER_CHUNK = LATENT_FRAMES_PER_CHUNK;

/** [1, C, T, H, W] of one latent video. */
export interface LatentShape {
  readonly channels: number;
  readonly frames: number;
  readonly height: number;
  readonly width: number;
}

/** Callers validate first: frames a multiple of 17, sides multiples of 8. */
export function latentShapeFor(video: VideoSize): LatentShape {
  return {
    channels: LATENT_CHANNELS,
    frames: (video.numFrames / FRAMES_PER_CHUNK) * LATENTS_PER_CHUNK,
    height: video.height / SPATIAL_FACTOR,
    width: video.width / SPATIAL_FACTOR,
  };
}

export function latentDims(shape: LatentShape, batch = 1): number[] {
  return [batch, shape.channels, shape.frames, shape.height, shape.width];
}

export function latentLength(shape: LatentShape): number {
  return shape.channels * shape.frames * shape.height * shape.width;
}
