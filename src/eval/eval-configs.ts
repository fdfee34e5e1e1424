/**
 * The configurations `eval` compares, each written as the `generate` flags it stands for and turned into a preset
 * by the same code that reads those flags, so an eval row means exactly what the flags mean on `generate`.
 */
import { presetFromFlags, type PolicyFlags } from '../cli/policy-flags.js';
import type { Preset } from '../policies/presets.js';
import type { EvalConfig } from './eval-config-names.js';

/** The paper's schedule: the configurations' step numbers (leap at 15, merge in the first 15) are of 30 steps. */
export const EVAL_STEPS = 30;

export { EVAL_CONFIGS, type EvalConfig } from './eval-config-names.js';

const CONFIG_FLAGS: Readonly<Record<EvalConfig, PolicyFlags>> = {
  baseline: { preset: 'baseline' },
  lpl15: { preset: 'baseline', lpl: 15 },
  'lpl-auto': { preset: 'baseline', lpl: 'auto' },
  tdtm15: { preset: 'baseline', tdtm: 15 },
  'tdtm-all': { preset: 'baseline', tdtm: 'all' },
  // The preset's CI-DL only schedules block loading under a memory budget; the videos are those of LPL 15 + TDTM 15.
  paper: { preset: 'paper' },
};

export function evalPreset(config: EvalConfig): Preset {
  return presetFromFlags(CONFIG_FLAGS[config]);
}

/** The `generate` flags a configuration stands for, e.g. `--lpl 15`, for reports. */
export function configFlags(config: EvalConfig): string {
  const { preset, lpl, tdtm } = CONFIG_FLAGS[config];
  const parts = [
    ...(preset === 'baseline' ? [] : [`--preset ${preset}`]),
    ...(lpl === undefined ? [] : [`--lpl ${lpl}`]),
    ...(tdtm === undefined ? [] : [`--tdtm ${tdtm}`]),
  ];
  return parts.length === 0 ? '(none)' : parts.join(' ');
}
