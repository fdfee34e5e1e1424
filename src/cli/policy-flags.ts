/**
 * The speed-up flags of `generate`: `--preset`, `--lpl`, `--lpl-tolerance`, `--lpl-patience`, `--tdtm`, `--step-cache`,
 * `--reuse-every`.
 */
import * as z from 'zod';
import { SoraError } from '../errors.js';
import { LIMITS } from '../model/limits.js';
import { DEFAULT_LPL_PATIENCE, DEFAULT_LPL_TOLERANCE, type LplSetting } from '../policies/lpl.js';
import { PRESET_NAMES, PRESETS, type Preset } from '../policies/presets.js';
import { integerFlag, numberFlag } from './flags.js';

const MAX_STEPS = LIMITS.steps;
const LPL_MESSAGE = `must be a step number from 1 to ${MAX_STEPS}, auto or off`;
const TDTM_MESSAGE = `must be a number of steps from 0 to ${MAX_STEPS}, or all`;

/** Zod fields for the flags schema of `generate`. */
export const POLICY_FLAGS = {
  preset: z.enum(PRESET_NAMES, `must be one of: ${PRESET_NAMES.join(', ')}`),
  lpl: z.union([z.enum(['auto', 'off']), integerFlag(1, MAX_STEPS, LPL_MESSAGE)], LPL_MESSAGE).optional(),
  lplTolerance: numberFlag('must be a number ≥ 0', (value) => Number.isFinite(value) && value >= 0).optional(),
  lplPatience: integerFlag(1, MAX_STEPS, `must be an integer from 1 to ${MAX_STEPS}`).optional(),
  tdtm: z.union([z.literal('all'), integerFlag(0, MAX_STEPS, TDTM_MESSAGE)], TDTM_MESSAGE).optional(),
  stepCache: numberFlag('must be a number ≥ 0', (value) => Number.isFinite(value) && value >= 0).optional(),
  reuseEvery: integerFlag(1, MAX_STEPS, `must be an integer from 1 to ${MAX_STEPS}`).optional(),
};

const PolicyFlagsSchema = z.object(POLICY_FLAGS);
export type PolicyFlags = z.infer<typeof PolicyFlagsSchema>;

/** The preset with the explicit flags applied. */
export function presetFromFlags(flags: PolicyFlags): Preset {
  const preset = PRESETS[flags.preset];
  return {
    ...preset,
    lpl: lplSetting(flags, preset.lpl),
    ...(flags.tdtm !== undefined && { tdtm: flags.tdtm }),
    ...(flags.stepCache !== undefined && { stepCache: flags.stepCache }),
    ...(flags.reuseEvery !== undefined && { reuseEvery: flags.reuseEvery }),
  };
}

function lplSetting(flags: PolicyFlags, fromPreset: LplSetting): LplSetting {
  const { lpl, lplTolerance, lplPatience } = flags;
  const setting = lpl === undefined ? fromPreset : lplFromFlag(lpl);
  if (setting.mode !== 'auto') {
    // A tuning flag that would change nothing is a mistake worth stopping for.
    const unused = lplTolerance !== undefined ? '--lpl-tolerance' : lplPatience !== undefined ? '--lpl-patience' : null;
    if (unused !== null) throw new SoraError('USAGE', `${unused}: only applies with --lpl auto`);
    return setting;
  }
  return { mode: 'auto', tolerance: lplTolerance ?? setting.tolerance, patience: lplPatience ?? setting.patience };
}

function lplFromFlag(lpl: 'auto' | 'off' | number): LplSetting {
  if (lpl === 'off') return { mode: 'off' };
  if (lpl === 'auto') return { mode: 'auto', tolerance: DEFAULT_LPL_TOLERANCE, patience: DEFAULT_LPL_PATIENCE };
  return { mode: 'fixed', step: lpl };
}
