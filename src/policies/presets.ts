/**
 * Named combinations of the On-device Sora speed-ups. A run starts from a preset (baseline unless asked) and each
 * explicit flag replaces one field, so `--preset paper --tdtm 0` is the paper's setting without merging.
 */
import type { Logger } from '../logging.js';
import type { StepPolicy } from '../pipeline/sampler.js';
import { blockReusePolicy } from './block-reuse.js';
import { lplPolicy, type LplSetting } from './lpl.js';
import { stepCachePolicy } from './step-cache.js';
import { tdtmPolicy, type TdtmSetting } from './tdtm.js';

export const PRESET_NAMES = ['baseline', 'paper', 'fast'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** The speed-ups one run uses: a named preset, or one with flags applied. */
export interface Preset {
  readonly lpl: LplSetting;
  readonly tdtm: TdtmSetting;
  /** Step cache threshold (step-cache.ts); 0: off. */
  readonly stepCache: number;
  /** Run the blocks every N-th step and reuse their residual between (block-reuse.ts); 1: every step runs them. */
  readonly reuseEvery: number;
  /** Concurrent inference with dynamic loading (reference §E); the block scheduler reads it. */
  readonly cidl: boolean;
}

export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  baseline: { lpl: { mode: 'off' }, tdtm: 0, stepCache: 0, reuseEvery: 1, cidl: false },
  // The paper's evaluation setting: leap at step 15 of 30 (16 evaluations), merge tokens in the first 15 steps.
  paper: { lpl: { mode: 'fixed', step: 15 }, tdtm: 15, stepCache: 0, reuseEvery: 1, cidl: true },
  // Beyond the paper, training-free: the leap plus the step cache, the combination that kept ≥ 95 % of the baseline's
  // eval score at ≥ 3× (README, "Beyond the paper"); at 0.2 it kept 0.94, with TDTM 15 as well 0.89.
  fast: { lpl: { mode: 'fixed', step: 15 }, tdtm: 0, stepCache: 0.15, reuseEvery: 1, cidl: false },
};

/** The sampler policies for `preset` on a latent of `frames` frames; the baseline has none. */
export function stepPolicies(preset: Preset, frames: number, logger: Logger): StepPolicy[] {
  return [
    ...(preset.tdtm === 0 ? [] : [tdtmPolicy(preset.tdtm, frames, logger)]),
    ...(preset.lpl.mode === 'off' ? [] : [lplPolicy(preset.lpl)]),
    ...(preset.stepCache === 0 ? [] : [stepCachePolicy(preset.stepCache)]),
    ...(preset.reuseEvery === 1 ? [] : [blockReusePolicy(preset.reuseEvery)]),
  ];
}
