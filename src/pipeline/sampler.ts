import type { BlockVariant } from './attention-mask.js';
import { NUM_TIMESTEPS } from './timesteps.js';

/** One denoising step as the denoiser and the policies see it. */
export interface StepInfo {
  /** 0-based step index. */
  readonly index: number;
  /** Number of steps of the schedule (N). */
  readonly steps: number;
  /** Transformed timestep t_i on the 0..1000 scale, as fed to the model. */
  readonly t: number;
}

export interface DenoiserStep extends StepInfo {
  readonly variant: BlockVariant;
  /** The variants the later steps of the schedule use (a leap may end sampling before them), so their blocks can load ahead. */
  readonly laterVariants?: ReadonlySet<BlockVariant>;
  /**
   * Asked once part1 has run: true reuses the block-stack residual cached at the last step that ran the blocks (output =
   * this step's stack input + that residual) instead of running them. Absent: the blocks always run, nothing is kept.
   */
  readonly reuseBlocks?: (input: StackInput) => boolean;
}

/**
 * The block stack's input at one step, on the host: part1's tokens `x` [2, N, C] (conditional row first, then the
 * unconditional one) and the timestep modulation `tMlp` [2, 6·C] every block applies.
 */
export interface StackInput {
  readonly x: Float32Array;
  readonly tMlp: Float32Array;
  /** Hidden size C. */
  readonly channels: number;
}

/** The model's velocity for the conditional and the unconditional (null-caption) sample, each shaped like z. */
export interface CfgVelocity {
  readonly cond: Float32Array;
  readonly uncond: Float32Array;
}

/** The model behind the sampler: runs [z; z] at timestep t with [y; y_null] captions (CFG batch 2). */
export interface Denoiser {
  predict(z: Float32Array, step: DenoiserStep): Promise<CfgVelocity>;
}

/**
 * A per-step hook into the sampler; speed-ups (TDTM, LPL) are each one policy. Every member is optional: a policy
 * implements only what it decides. With several policies, a step uses TDTM blocks if any policy asks for them and
 * leaps if any policy asks to.
 */
export interface StepPolicy {
  /** Name under which `record()` is reported. */
  readonly name: string;
  /**
   * Which STDiT block variant runs step `step` (default ST). Decided from the step alone: the sampler asks about every
   * step of the schedule up front, so that blocks can load ahead.
   */
  blockVariant?(step: StepInfo): BlockVariant;
  /**
   * Sees every step's CFG-combined drift before the Euler update. Returning true makes this step a proportional leap:
   * dt = t_i/1000 (straight to t = 0), and sampling ends after it.
   */
  leapAfter?(step: StepInfo, drift: Float32Array): boolean;
  /**
   * Whether step `step` reuses the cached block-stack residual instead of running the blocks (step caching). Called at
   * every step with the stack's input; a step answered false runs the blocks and caches their residual anew. Step 0
   * has nothing cached: answering true there is a bug. Both CFG rows reuse together, each with its own residual.
   */
  reuseBlocks?(step: StepInfo, input: StackInput): boolean;
  /** Facts for the sidecar (e.g. a similarity trace), read once sampling ends. */
  record?(): Record<string, unknown>;
}

export interface SampleOptions {
  /** Transformed timesteps t_0..t_{N−1} (samplingTimesteps). */
  readonly timesteps: Float32Array;
  readonly cfgScale: number;
  readonly policies?: readonly StepPolicy[];
  /** Called after each step's update. */
  readonly onStep?: (step: StepInfo) => void;
}

export interface SampleResult {
  readonly latent: Float32Array;
  /** Denoiser calls made (N, or fewer after a leap). */
  readonly evaluations: number;
  /** Index of the step that leapt to t = 0 before the schedule ended, or null. */
  readonly leapStep: number | null;
  /** Evaluations that reused the cached block-stack residual instead of running the blocks. */
  readonly reusedBlocks: number;
  readonly policies: Record<string, Record<string, unknown>>;
}

/**
 * Rectified-flow sampling (reference §B): at each step v = v_uncond + s·(v_cond − v_uncond), then the Euler update
 * z ← z + v·dt with dt = (t_i − t_{i+1})/1000, and dt = t_i/1000 on the last step or a leap. Every operation is
 * rounded to float32, as the reference's float32 tensors are, so parity does not depend on evaluation order.
 */
export async function sample(denoiser: Denoiser, noise: Float32Array, options: SampleOptions): Promise<SampleResult> {
  const { timesteps, cfgScale, policies = [], onStep } = options;
  const steps = timesteps.length;
  const z = Float32Array.from(noise);
  const drift = new Float32Array(z.length);
  let evaluations = 0;
  let leapStep: number | null = null;
  let reusedBlocks = 0;
  const caching = policies.filter((p) => p.reuseBlocks !== undefined);
  const variants = Array.from(timesteps, (t, index): BlockVariant =>
    policies.some((p) => p.blockVariant?.({ index, steps, t }) === 'tdtm') ? 'tdtm' : 'st',
  );
  for (let index = 0; index < steps && leapStep === null; index++) {
    const step: StepInfo = { index, steps, t: timesteps[index]! };
    const variant = variants[index]!;
    const laterVariants = new Set(variants.slice(index + 1));
    // Every caching policy sees every input it is asked about (no short-circuit): each keeps its own history.
    const reuseBlocks = (input: StackInput): boolean => {
      const reuse = caching.map((p) => p.reuseBlocks!(step, input)).includes(true);
      if (reuse) reusedBlocks++;
      return reuse;
    };
    const velocity = await denoiser.predict(z, { ...step, variant, laterVariants, ...(caching.length > 0 && { reuseBlocks }) });
    evaluations++;
    combineGuidance(velocity, cfgScale, drift);
    // Every policy sees every drift (no short-circuit): an adaptive policy keeps a history.
    const leap = policies.map((p) => p.leapAfter?.(step, drift) === true).includes(true);
    const last = index === steps - 1;
    eulerStep(z, drift, leap || last ? step.t : step.t - timesteps[index + 1]!);
    onStep?.(step);
    if (leap && !last) leapStep = index;
  }
  const records = Object.fromEntries(policies.flatMap((p) => (p.record ? [[p.name, p.record()]] : [])));
  return { latent: z, evaluations, leapStep, reusedBlocks, policies: records };
}

const f = Math.fround;

/** v_uncond + s·(v_cond − v_uncond). */
function combineGuidance(velocity: CfgVelocity, cfgScale: number, out: Float32Array): void {
  const { cond, uncond } = velocity;
  const scale = f(cfgScale);
  for (let k = 0; k < out.length; k++) out[k] = uncond[k]! + f(scale * f(cond[k]! - uncond[k]!));
}

/** z ← z + v·dt with dt = Δt/1000. */
function eulerStep(z: Float32Array, drift: Float32Array, deltaT: number): void {
  const dt = f(f(deltaT) / NUM_TIMESTEPS);
  for (let k = 0; k < z.length; k++) z[k] = z[k]! + f(drift[k]! * dt);
}
