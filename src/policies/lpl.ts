/**
 * Linear Proportional Leap (reference §C). Late in a rectified-flow trajectory consecutive drifts are nearly
 * collinear, so after step n the remaining path is taken in one Euler step with the whole remaining time:
 * z_final = z_n + v_n · t_n/1000. The sampler does the leap; this policy only decides at which step.
 *
 * `auto` compares the WHOLE CFG-combined drift, not the authors' slice (batch 0, channel 0, latent frame 0, cosine
 * per row, averaged): the leap extrapolates every frame and channel, so whether extrapolating is safe must be judged
 * on all of them — one frame of one channel says nothing about motion in later frames, and row averaging weighs a
 * near-zero row like a large one. The drift is already a host Float32Array here, so the full cosine is one pass over
 * 4·T·H·W values per step, negligible next to an STDiT evaluation.
 */
import type { StepInfo, StepPolicy } from '../pipeline/sampler.js';

export const DEFAULT_LPL_TOLERANCE = 1e-4;
export const DEFAULT_LPL_PATIENCE = 3;

/** Never leap, leap at a fixed step, or leap once consecutive drifts stop becoming more collinear. */
export type LplSetting =
  | { readonly mode: 'off' }
  | { readonly mode: 'fixed'; readonly step: number }
  | { readonly mode: 'auto'; readonly tolerance: number; readonly patience: number };

export function lplPolicy(setting: Exclude<LplSetting, { mode: 'off' }>): StepPolicy {
  return setting.mode === 'fixed' ? new FixedLeap(setting.step) : new DynamicLeap(setting.tolerance, setting.patience);
}

/** The step index leaps are reported under: a leap on the last step is an ordinary last step (same dt). */
function earlyLeap(step: StepInfo): number | null {
  return step.index < step.steps - 1 ? step.index : null;
}

/** `--lpl N`: steps 0…N−1 as usual, the leap at step N, so N + 1 evaluations (N ≥ steps: no leap). */
class FixedLeap implements StepPolicy {
  readonly name = 'lpl';
  private evaluations = 0;
  private leapStep: number | null = null;

  constructor(private readonly step: number) {}

  leapAfter(step: StepInfo): boolean {
    this.evaluations++;
    if (step.index !== this.step) return false;
    this.leapStep = earlyLeap(step);
    return true;
  }

  record(): Record<string, unknown> {
    return { mode: 'fixed', step: this.step, leapStep: this.leapStep, evaluations: this.evaluations };
  }
}

/**
 * The step from which `auto` checks: once this step's evaluation makes at least half of the N evaluations. For 30
 * steps that is step 14, where the authors' code (minimum_steps = 14) starts too.
 */
export function firstCheckedStep(steps: number): number {
  return Math.ceil(steps / 2) - 1;
}

/**
 * `--lpl auto` (the paper's dynamic rule): from firstCheckedStep on, a step whose similarity to the previous drift
 * does not beat the best so far (which starts at 0) by more than `tolerance` uses up one unit of patience, a step
 * that does restores it; the step that uses up the last unit leaps.
 */
class DynamicLeap implements StepPolicy {
  readonly name = 'lpl';
  private previous: Float32Array | null = null;
  private best = 0;
  private patienceLeft: number;
  private evaluations = 0;
  private steps = 0;
  private leapStep: number | null = null;
  private readonly similarities: { step: number; similarity: number }[] = [];

  constructor(
    private readonly tolerance: number,
    private readonly patience: number,
  ) {
    this.patienceLeft = patience;
  }

  leapAfter(step: StepInfo, drift: Float32Array): boolean {
    this.evaluations++;
    this.steps = step.steps;
    const previous = this.previous;
    // A copy: the sampler reuses its drift buffer for the next step.
    this.previous = Float32Array.from(drift);
    if (previous === null) return false;
    const similarity = cosineSimilarity(drift, previous);
    this.similarities.push({ step: step.index, similarity });
    if (step.index < firstCheckedStep(step.steps)) return false;
    if (similarity > this.best + this.tolerance) {
      this.best = similarity;
      this.patienceLeft = this.patience;
      return false;
    }
    this.patienceLeft--;
    if (this.patienceLeft > 0) return false;
    this.leapStep = earlyLeap(step);
    return true;
  }

  record(): Record<string, unknown> {
    return {
      mode: 'auto',
      tolerance: this.tolerance,
      patience: this.patience,
      checkedFrom: firstCheckedStep(this.steps),
      leapStep: this.leapStep,
      evaluations: this.evaluations,
      similarities: this.similarities,
    };
  }
}

/**
 * cos∠(a, b), accumulated in float64 so a long vector's sum does not lose the last digits the tolerance looks at.
 * A zero vector has no direction; 0 makes it count as "no improvement", and leaping past a zero drift moves nothing.
 */
export function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let k = 0; k < a.length; k++) {
    dot += a[k]! * b[k]!;
    aa += a[k]! * a[k]!;
    bb += b[k]! * b[k]!;
  }
  const norms = Math.sqrt(aa) * Math.sqrt(bb);
  return norms === 0 ? 0 : dot / norms;
}
