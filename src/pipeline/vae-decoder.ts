import { VAE_SPATIAL_PARTS, VAE_TEMPORAL_PARTS } from '../model/contract.js';
import { runBlock, type BlockProvider } from './block-provider.js';
import { LATENTS_PER_CHUNK, type LatentShape } from './latent.js';
import { isResident, type TensorValue } from '../runtime/backend.js';
import { ResidentSet } from './resident-set.js';
import { float32Output, float32Tensor, residentFloat32Output, type Float32Tensor } from './tensors.js';

/** Open-Sora's spatial micro-batch: the 2-D VAE decodes 4 frames at a time. */
export const SPATIAL_CHUNK_FRAMES = 4;

/** One decoded frame, packed RGB24 (row-major, 3 bytes per pixel). */
export type RgbFrame = Uint8Array;

/**
 * The VAE decoder as reference §A.4 splits it: the temporal decoder on chunks of 5 latent frames (each → 17 latent
 * frames at full frame rate), then the 2-D decoder on chunks of 4 frames (the last one may be shorter).
 * Chunks are independent, so only one chunk's activations are alive at a time.
 */
export async function decodeLatent(
  provider: BlockProvider,
  latent: Float32Array,
  shape: LatentShape,
  onFrames?: (decoded: number, total: number, chunk: readonly RgbFrame[]) => void,
): Promise<RgbFrame[]> {
  provider.preload?.([...VAE_TEMPORAL_PARTS, ...VAE_SPATIAL_PARTS]);
  const expanded = await decodeTemporal(provider, latent, shape);
  const total = expanded.dims[2]!;
  const frames: RgbFrame[] = [];
  for (let start = 0; start < total; start += SPATIAL_CHUNK_FRAMES) {
    const count = Math.min(SPATIAL_CHUNK_FRAMES, total - start);
    const chunk = timeSlice(expanded, start, count);
    const pixels = await runChain(provider, VAE_SPATIAL_PARTS, chunk);
    const decoded = toRgbFrames(pixels);
    frames.push(...decoded);
    onFrames?.(frames.length, total, decoded);
  }
  return frames;
}

/** [1,C,5k,h,w] → [1,C,17k,h,w]. */
async function decodeTemporal(
  provider: BlockProvider,
  latent: Float32Array,
  shape: LatentShape,
): Promise<Float32Tensor> {
  const input = float32Tensor([1, shape.channels, shape.frames, shape.height, shape.width], latent);
  const outputs: Float32Tensor[] = [];
  for (let start = 0; start < shape.frames; start += LATENTS_PER_CHUNK) {
    outputs.push(await runChain(provider, VAE_TEMPORAL_PARTS, timeSlice(input, start, LATENTS_PER_CHUNK)));
  }
  return concatTime(outputs);
}

/** The parts one after the other; what passes between them stays where they run, the last output comes back. */
async function runChain(
  provider: BlockProvider,
  parts: readonly string[],
  input: Float32Tensor,
): Promise<Float32Tensor> {
  const resident = new ResidentSet(provider.backend);
  try {
    let latents: TensorValue = input;
    for (const [i, part] of parts.entries()) {
      const last = i === parts.length - 1;
      // The first input is a slice made for this chain: handed over, not copied.
      const handOver = isResident(latents) ? { consume: ['latents'] } : { transferInputs: true };
      const outputs = await runBlock(provider, part, { latents }, parts[i + 1], { keep: last ? [] : ['output'], ...handOver });
      if (last) return float32Output(outputs, part, 'output');
      latents = resident.add(residentFloat32Output(outputs, part, 'output'));
    }
    return input;
  } finally {
    await resident.release();
  }
}

/** Frames [start, start+count) of a [1,C,T,H,W] tensor. */
function timeSlice(tensor: Float32Tensor, start: number, count: number): Float32Tensor {
  const [, channels = 0, frames = 0, height = 0, width = 0] = tensor.dims;
  const plane = height * width;
  const out = new Float32Array(channels * count * plane);
  for (let c = 0; c < channels; c++) {
    const from = (c * frames + start) * plane;
    out.set(tensor.data.subarray(from, from + count * plane), c * count * plane);
  }
  return float32Tensor([1, channels, count, height, width], out);
}

/** Concatenates [1,C,T_i,H,W] tensors along T. */
function concatTime(tensors: readonly Float32Tensor[]): Float32Tensor {
  const [, channels = 0, , height = 0, width = 0] = tensors[0]!.dims;
  const plane = height * width;
  const frames = tensors.reduce((sum, t) => sum + t.dims[2]!, 0);
  const out = new Float32Array(channels * frames * plane);
  let offset = 0;
  for (const tensor of tensors) {
    const count = tensor.dims[2]!;
    for (let c = 0; c < channels; c++) {
      out.set(tensor.data.subarray(c * count * plane, (c + 1) * count * plane), (c * frames + offset) * plane);
    }
    offset += count;
  }
  return float32Tensor([1, channels, frames, height, width], out);
}

/** [1,3,F,H,W] in [−1,1] → F packed RGB24 frames. */
function toRgbFrames(pixels: Float32Tensor): RgbFrame[] {
  const [, , frames = 0, height = 0, width = 0] = pixels.dims;
  const plane = height * width;
  const out: RgbFrame[] = [];
  for (let t = 0; t < frames; t++) {
    const frame = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const source = (c * frames + t) * plane;
      for (let p = 0; p < plane; p++) frame[p * 3 + c] = toByte(pixels.data[source + p]!);
    }
    out.push(frame);
  }
  return out;
}

const f = Math.fround;

/**
 * Open-Sora's `save_sample`: clamp to [−1,1], map to [0,255], add 0.5 and truncate, in float32. (The app truncates
 * without the 0.5, which darkens every pixel by half a level on average.)
 */
export function toByte(value: number): number {
  const clamped = value < -1 ? -1 : value > 1 ? 1 : value;
  return Math.trunc(f(f(f(f(clamped + 1) / 2) * 255) + 0.5));
}
