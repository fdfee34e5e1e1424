/**
 * Temporal Dimension Token Merging (reference §D): the first K denoising steps run the `stdit3_TDTM_i` blocks,
 * which attend over averaged frame pairs; the runner gives them the half-height cross-attention mask. Merging only
 * early steps is the paper's advice: late steps shape the fine motion that merging blurs.
 */
import type { Logger } from '../logging.js';
import type { BlockVariant } from '../pipeline/attention-mask.js';
import type { StepInfo, StepPolicy } from '../pipeline/sampler.js';

/** Merging steps: the first K steps, or every step. */
export type TdtmSetting = number | 'all';

/** A pair needs two frames; with one latent frame there is nothing to merge. */
const MIN_FRAMES = 2;

/** `frames` is the latent frame count T; an odd T works (the blocks copy the last pair's output to the last frame). */
export function tdtmPolicy(setting: TdtmSetting, frames: number, logger: Logger): StepPolicy {
  if (frames < MIN_FRAMES) {
    logger.debug({ frames, tdtm: setting }, 'TDTM needs at least 2 latent frames: every step runs ST blocks');
  }
  const mergeSteps = frames < MIN_FRAMES ? 0 : setting === 'all' ? Infinity : setting;
  return new FrameMerging(setting, mergeSteps);
}

class FrameMerging implements StepPolicy {
  readonly name = 'tdtm';
  private mergedSteps = 0;

  constructor(
    private readonly setting: TdtmSetting,
    private readonly mergeSteps: number,
  ) {}

  blockVariant(step: StepInfo): BlockVariant {
    return step.index < this.mergeSteps ? 'tdtm' : 'st';
  }

  /** Never leaps: every step that ran passes here once, so the merged ones are counted here. */
  leapAfter(step: StepInfo): boolean {
    if (step.index < this.mergeSteps) this.mergedSteps++;
    return false;
  }

  record(): Record<string, unknown> {
    return { mergeSteps: this.setting, mergedSteps: this.mergedSteps };
  }
}
