/**
 * Step caching after TeaCache (Liu et al. 2024, "Timestep Embedding Tells: It's Time to Cache for Video Diffusion
 * Model", arXiv 2411.19108): a DiT's output changes across steps about as much as its timestep-modulated input does,
 * so the relative L1 change of that input is accumulated step by step, and while the sum stays below a threshold the
 * block stack is not run: the step reuses the residual (output − input of the stack) of the last step that ran it.
 * When the sum reaches the threshold the blocks run and the sum restarts from 0.
 *
 * The indicator is block 0's modulated input as far as part1's outputs give it: LayerNorm(x)·(1 + scale) + shift with
 * scale and shift the attention ones of `t_mlp`. Block 0's own learned scale-shift table is inside the block, not an
 * output of part1, so it is left out; TeaCache's per-model polynomial that rescales the indicator is not fitted here
 * either (the threshold is the one knob). Both CFG rows enter one sum and reuse together, so the conditional and the
 * unconditional sample never come from different steps. Step 0 has no previous input and the last step sets the final
 * detail: both always run the blocks.
 */
import type { StackInput, StepInfo, StepPolicy } from '../pipeline/sampler.js';

/** LayerNorm's epsilon in the STDiT3 blocks (reference §A.3). */
const LN_EPS = 1e-6;
/** t_mlp is 6 chunks of C per row: shift, scale, gate of attention, then of the MLP. */
const MODULATION_CHUNKS = 6;

export function stepCachePolicy(threshold: number): StepPolicy {
  return new StepCache(threshold);
}

class StepCache implements StepPolicy {
  readonly name = 'step-cache';
  private previous: Float32Array | null = null;
  private accumulated = 0;
  private readonly reusedSteps: number[] = [];
  /** Each step's relative L1 change of the indicator from the step before (the tuning data for the threshold). */
  private readonly changes: { step: number; change: number }[] = [];

  constructor(private readonly threshold: number) {}

  reuseBlocks(step: StepInfo, input: StackInput): boolean {
    const current = modulatedInput(input);
    const previous = this.previous;
    this.previous = current;
    if (previous === null || step.index === step.steps - 1) {
      this.accumulated = 0;
      return false;
    }
    const change = relativeL1(current, previous);
    this.changes.push({ step: step.index, change });
    this.accumulated += change;
    if (this.accumulated < this.threshold) {
      this.reusedSteps.push(step.index);
      return true;
    }
    this.accumulated = 0;
    return false;
  }

  record(): Record<string, unknown> {
    return { threshold: this.threshold, reusedSteps: this.reusedSteps, changes: this.changes };
  }
}

/** Σ|a − b| / Σ|b|, in float64; 0 when b is all zeros (nothing to compare against changes nothing). */
export function relativeL1(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let base = 0;
  for (let k = 0; k < a.length; k++) {
    diff += Math.abs(a[k]! - b[k]!);
    base += Math.abs(b[k]!);
  }
  return base === 0 ? 0 : diff / base;
}

/** LayerNorm(x)·(1 + scale_msa) + shift_msa per token, each CFG row with its own modulation. */
export function modulatedInput({ x, tMlp, channels }: StackInput): Float32Array {
  const out = new Float32Array(x.length);
  const tokensPerRow = x.length / channels / 2;
  for (let token = 0; token < x.length / channels; token++) {
    const base = token * channels;
    const modulation = Math.floor(token / tokensPerRow) * MODULATION_CHUNKS * channels;
    let mean = 0;
    for (let c = 0; c < channels; c++) mean += x[base + c]!;
    mean /= channels;
    let variance = 0;
    for (let c = 0; c < channels; c++) variance += (x[base + c]! - mean) ** 2;
    const inv = 1 / Math.sqrt(variance / channels + LN_EPS);
    for (let c = 0; c < channels; c++) {
      const shift = tMlp[modulation + c]!;
      const scale = tMlp[modulation + channels + c]!;
      out[base + c] = (x[base + c]! - mean) * inv * (1 + scale) + shift;
    }
  }
  return out;
}
