/**
 * The rectified-flow timestep schedule (reference §B): N raw timesteps t_i = (1 − i/N)·1000, each moved towards
 * the noisy end by Open-Sora's resolution- and length-dependent transform.
 *
 * Both variants are computed in float32 exactly as their source does (Open-Sora: float32 tensors; the app: Swift
 * Float32), by rounding after every operation. Rounding float64 results of +, −, ×, ÷ and sqrt to float32 gives the
 * float32 operation's result exactly (53 ≥ 2·24 + 2), so this reproduces them bit for bit.
 */
export const TIMESTEP_TRANSFORMS = ['opensora', 'ios'] as const;
export type TimestepTransform = (typeof TIMESTEP_TRANSFORMS)[number];

export const NUM_TIMESTEPS = 1000;

/** The generated video, in pixels and frames. */
export interface VideoSize {
  readonly numFrames: number;
  readonly width: number;
  readonly height: number;
}

const f = Math.fround;
const BASE_RESOLUTION = 512 * 512;
/** The app computes the time ratio from a hard-coded 51 frames, whatever it generates. */
const IOS_TRANSFORM_FRAMES = 51;

/** Latent frames as the transform counts them: 5 per started 17 frames (Open-Sora's `num_frames // 17 * 5`). */
function transformLatentFrames(numFrames: number): number {
  return Math.floor(numFrames / 17) * 5;
}

/** `ratio` of the transform: √(H·W / 512²) · √F_lat. */
export function transformRatio(transform: TimestepTransform, size: VideoSize): number {
  const frames = transformLatentFrames(transform === 'ios' ? IOS_TRANSFORM_FRAMES : size.numFrames);
  const space = f(Math.sqrt(f((size.width * size.height) / BASE_RESOLUTION)));
  return f(space * f(Math.sqrt(frames)));
}

/**
 * Raw timestep i of N before the transform. Open-Sora computes it in float64 and keeps it unrounded (upstream
 * `use_discrete_timesteps=False`); the app computes it in Float32 and rounds it to an integer with Swift's
 * `round` (half away from zero, which is Math.round for t ≥ 0).
 */
export function rawTimestep(transform: TimestepTransform, index: number, steps: number): number {
  if (transform === 'opensora') return f((1 - index / steps) * NUM_TIMESTEPS);
  return Math.round(f(f(1 - f(index / steps)) * NUM_TIMESTEPS));
}

/** τ' = r·τ / (1 + (r − 1)·τ) with τ = t/1000, back on the 0..1000 scale. */
function transformTimestep(t: number, ratio: number): number {
  const tau = f(t / NUM_TIMESTEPS);
  const transformed = f(f(ratio * tau) / f(1 + f(f(ratio - 1) * tau)));
  return f(transformed * NUM_TIMESTEPS);
}

/** The N transformed timesteps the sampler runs, t_0 = 1000 first; they are fed to the model and used for dt. */
export function samplingTimesteps(steps: number, transform: TimestepTransform, size: VideoSize): Float32Array {
  const ratio = transformRatio(transform, size);
  const timesteps = new Float32Array(steps);
  for (let i = 0; i < steps; i++) timesteps[i] = transformTimestep(rawTimestep(transform, i, steps), ratio);
  return timesteps;
}
