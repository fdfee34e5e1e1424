/** The memory flags of `generate`: `--memory-budget`, `--no-ci`, `--no-dl`, `--trace`. */
import * as z from 'zod';
import { SoraError } from '../errors.js';
import { COMPONENTS, type Component } from '../model/contract.js';
import { blockSource, type Model } from '../model/manifest.js';
import type { GenerateResult } from '../pipeline/generate.js';
import type { CidlSettings } from '../pipeline/ci-dl.js';
import { latentShapeFor } from '../pipeline/latent.js';
import { refuseBudgetBeforeWork, runGeometry } from '../pipeline/memory-estimates.js';
import type { VideoSize } from '../pipeline/timesteps.js';
import { localMemoryMeter, memoryBudgetFlag, resolveBudget } from '../pipeline/memory-budget.js';
import type { JobMemory } from '../pipeline/session.js';
import type { MemoryMeter } from '../runtime/memory-meter.js';
import type { Timeline } from '../pipeline/timeline.js';
import type { Preset } from '../policies/presets.js';

/** Zod fields for the flags schema of `generate`; commander gives `ci`/`dl` false for `--no-ci`/`--no-dl`. */
export const MEMORY_FLAGS = {
  memoryBudget: memoryBudgetFlag.optional(),
  ci: z.boolean(),
  dl: z.boolean(),
  trace: z.boolean().optional(),
};

const MemoryFlagsSchema = z.object(MEMORY_FLAGS);
export type MemoryFlags = z.infer<typeof MemoryFlagsSchema>;

/**
 * CI-DL runs when the preset asks for it (`--preset paper`) or a budget is given; then the budget is resolved and
 * checked, before any block is loaded, against the model's blocks and the first runs at each of `sizes` (the videos
 * the command will make; see memory-estimates.ts). Without CI-DL every block stays loaded until its component is
 * done, and the ablation flags would change nothing, so they are refused.
 */
export function cidlSettings(
  flags: MemoryFlags,
  preset: Preset,
  model: Model,
  sizes: readonly VideoSize[] = [],
  meter: MemoryMeter = localMemoryMeter,
): CidlSettings | undefined {
  if (!cidlRequested(flags, preset)) {
    const unused = !flags.ci ? '--no-ci' : !flags.dl ? '--no-dl' : null;
    if (unused !== null) throw new SoraError('USAGE', `${unused}: only applies with CI-DL (--preset paper or --memory-budget)`);
    return undefined;
  }
  const budget = resolveBudget(flags.memoryBudget ?? { kind: 'default' }, meter);
  const inUse = meter.inUse();
  const blocks = (component: Component) => model.blocks.filter((b) => b.component === component).map(blockSource);
  for (const latent of sizes.length > 0 ? sizes.map(latentShapeFor) : [undefined]) {
    const components = COMPONENTS.map((label) => ({
      label,
      blocks: blocks(label),
      geometry: latent && runGeometry(model, latent, label),
    }));
    refuseBudgetBeforeWork(budget, inUse, components);
  }
  return { budget, concurrent: flags.ci, dynamicLoading: flags.dl };
}

export function cidlRequested(flags: Pick<MemoryFlags, 'memoryBudget'>, preset: Preset): boolean {
  return preset.cidl || flags.memoryBudget !== undefined;
}

/** cidlSettings for openJobBackend: resolved once the process that runs the blocks is known. */
export function jobMemory(flags: MemoryFlags, preset: Preset, model: Model, sizes: readonly VideoSize[] = []): JobMemory {
  return { requested: cidlRequested(flags, preset), settings: (meter) => cidlSettings(flags, preset, model, sizes, meter) };
}

/** The sidecar's `memory` (peak RSS; with CI-DL the budget and each component's report) and, with --trace, `trace`. */
export function memorySidecar(cidl: CidlSettings | undefined, result: GenerateResult, timeline?: Timeline) {
  const memory = {
    peakRss: result.memory.peakRss,
    cidl: cidl === undefined ? null : { ...cidl, components: result.memory.cidl },
  };
  return { memory, ...(timeline && { trace: timeline.toChromeTrace() }) };
}
