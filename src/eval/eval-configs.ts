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
  // Beyond the paper (issue 17): each training-free cache alone, then with the leap, then the `fast` preset.
  'cache0.1': { preset: 'baseline', stepCache: 0.1 },
  'cache0.2': { preset: 'baseline', stepCache: 0.2 },
  'cache0.3': { preset: 'baseline', stepCache: 0.3 },
  reuse2: { preset: 'baseline', reuseEvery: 2 },
  reuse3: { preset: 'baseline', reuseEvery: 3 },
  'lpl15-cache0.1': { preset: 'baseline', lpl: 15, stepCache: 0.1 },
  'lpl15-cache0.15': { preset: 'baseline', lpl: 15, stepCache: 0.15 },
  'lpl15-cache0.2': { preset: 'baseline', lpl: 15, stepCache: 0.2 },
  'lpl15-cache0.3': { preset: 'baseline', lpl: 15, stepCache: 0.3 },
  'lpl15-reuse2': { preset: 'baseline', lpl: 15, reuseEvery: 2 },
  'lpl15-reuse3': { preset: 'baseline', lpl: 15, reuseEvery: 3 },
  'lpl-auto-cache0.2': { preset: 'baseline', lpl: 'auto', stepCache: 0.2 },
  'lpl15-tdtm15-cache0.2': { preset: 'baseline', lpl: 15, tdtm: 15, stepCache: 0.2 },
  fast: { preset: 'fast' },
};

export function evalPreset(config: EvalConfig): Preset {
  return presetFromFlags(CONFIG_FLAGS[config]);
}

/** The `generate` flags a configuration stands for, e.g. `--lpl 15`, for reports. */
export function configFlags(config: EvalConfig): string {
  const { preset, lpl, tdtm, stepCache, reuseEvery } = CONFIG_FLAGS[config];
  const parts = [
    ...(preset === 'baseline' ? [] : [`--preset ${preset}`]),
    ...(lpl === undefined ? [] : [`--lpl ${lpl}`]),
    ...(tdtm === undefined ? [] : [`--tdtm ${tdtm}`]),
    ...(stepCache === undefined ? [] : [`--step-cache ${stepCache}`]),
    ...(reuseEvery === undefined ? [] : [`--reuse-every ${reuseEvery}`]),
  ];
  return parts.length === 0 ? '(none)' : parts.join(' ');
}
