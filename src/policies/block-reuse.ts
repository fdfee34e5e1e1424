/**
 * Interval reuse of the block stack's residual, after FORA (Selvaraju et al. 2024, "FORA: Fast-Forward Caching in
 * Diffusion Transformer Acceleration", arXiv 2407.01425) and Δ-DiT (Chen et al. 2024, arXiv 2406.01125): the
 * blocks run at every N-th step and the steps between reuse the residual (output − input of the stack) of the last
 * step that ran them. FORA caches each layer's attention and MLP outputs; with the block contract fixed (one block
 * pair per call) the unit reused here is the whole stack, as in Δ-DiT's block-range caches. Unlike the step cache it
 * looks at nothing: the schedule alone decides. The last step always runs the blocks.
 */
import type { StepInfo, StepPolicy } from '../pipeline/sampler.js';

export function blockReusePolicy(every: number): StepPolicy {
  return new IntervalReuse(every);
}

class IntervalReuse implements StepPolicy {
  readonly name = 'block-reuse';
  private readonly reusedSteps: number[] = [];

  constructor(private readonly every: number) {}

  reuseBlocks(step: StepInfo): boolean {
    const reuse = step.index % this.every !== 0 && step.index !== step.steps - 1;
    if (reuse) this.reusedSteps.push(step.index);
    return reuse;
  }

  record(): Record<string, unknown> {
    return { every: this.every, reusedSteps: this.reusedSteps };
  }
}
