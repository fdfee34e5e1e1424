/**
 * The memory budget of a run (`--memory-budget`): a cap on the process's peak RSS, and the peak-RSS bookkeeping that
 * checks it. Sizes are binary (1G = 1024³ bytes), as in `free -g` and container limits.
 */
import * as z from 'zod';
import { SoraError } from '../errors.js';
import { availableMemory, evictFile, mallocTrim, peakRss, prefetchFile, resetPeakRss } from '../native/memory.js';
import type { MemoryMeter } from '../runtime/memory-meter.js';

import { DEFAULT_BUDGET_FRACTION } from './budget-default.js';
import { formatBytes } from './format-bytes.js';

export { DEFAULT_BUDGET_FRACTION, formatBytes };

const UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
const SIZE = /^(-)?(\d+(?:\.\d+)?|\.\d+)\s*([KMGT]?)(?:i?B)?$/i;
const SIZE_MESSAGE = 'must be a size such as 3.3G or 800M (negative: that much below the available memory)';

export type BudgetSpec =
  | { readonly kind: 'absolute'; readonly bytes: number }
  /** The available memory minus this margin. */
  | { readonly kind: 'margin'; readonly bytes: number }
  | { readonly kind: 'default' };

/** `3.3G`, `800M`, `1.5GiB`, `123456` (bytes); a leading `-` asks for available memory minus that much. */
export const memoryBudgetFlag = z
  .string()
  .trim()
  .regex(SIZE, SIZE_MESSAGE)
  .transform((text): BudgetSpec => {
    const [, minus, number = '0', unit = ''] = SIZE.exec(text) ?? [];
    const bytes = Math.round(Number(number) * UNITS[unit.toUpperCase()]!);
    return minus === undefined ? { kind: 'absolute', bytes } : { kind: 'margin', bytes };
  })
  .refine((spec) => spec.kind !== 'absolute' || spec.bytes > 0, 'must be above 0');

export interface MemoryBudget {
  /** Process peak RSS the run must stay under. */
  readonly bytes: number;
  /** How it was chosen, for messages and the sidecar. */
  readonly source: string;
}

/**
 * Turns the flag into bytes against the memory in use and available now (cgroup limits included) in the process that
 * runs the blocks: this one, or a remote runner.
 */
export function resolveBudget(spec: BudgetSpec, meter: MemoryMeter = localMemoryMeter): MemoryBudget {
  if (spec.kind === 'absolute') return { bytes: spec.bytes, source: `--memory-budget ${formatBytes(spec.bytes)}` };
  const inUse = meter.inUse();
  const available = meter.available();
  if (spec.kind === 'default') {
    const bytes = Math.floor(inUse + DEFAULT_BUDGET_FRACTION * available);
    return { bytes, source: `default: ${formatBytes(inUse)} in use + ${DEFAULT_BUDGET_FRACTION * 100}% of ${formatBytes(available)} available` };
  }
  const bytes = inUse + available - spec.bytes;
  if (bytes <= inUse) {
    throw new SoraError(
      'MEMORY',
      `--memory-budget: -${formatBytes(spec.bytes)} leaves nothing: only ${formatBytes(available)} is available`,
    );
  }
  return { bytes, source: `${formatBytes(inUse)} in use + ${formatBytes(available)} available - ${formatBytes(spec.bytes)}` };
}

/**
 * Kept free by every admission of CI-DL: JS heap growth and tensors the pipeline allocates between two admissions,
 * and the allocator's slack; its plan keeps twice as much.
 */
const RESERVE_BYTES = 16 * 2 ** 20;
const RESERVE_FRACTION = 0.02;

export function budgetReserve(budget: number): number {
  return RESERVE_BYTES + RESERVE_FRACTION * budget;
}

// The kernel keeps one high-water mark per process. The scheduler resets it to measure each block on its own, so
// the peak of the whole run is folded in here before every reset.
let runPeak = 0;

/** Peak RSS since the previous call (or process start), then starts a new window. */
export function takeWindowPeak(): number {
  const peak = Math.max(peakRss(), process.memoryUsage.rss());
  runPeak = Math.max(runPeak, peak);
  // Where the OS cannot reset the mark, every later window reports the highest peak so far: too high, never too low.
  resetPeakRss();
  return peak;
}

/** The highest RSS of this process so far, across every window. */
export function processPeakRss(): number {
  return Math.max(runPeak, peakRss());
}

/** This process's memory, for the local backends. */
export const localMemoryMeter: MemoryMeter = {
  where: 'this process',
  // The same RSS as processMemory().rss (VmRSS; task_info's resident size on macOS) at a sixth of the cost (12 vs
  // 75 µs here): CI-DL reads it before every block run.
  inUse: () => process.memoryUsage.rss(),
  takeWindowPeak,
  available: () => availableMemory().available,
  trim: () => {
    mallocTrim();
  },
  pageCache: { prefetch: (path) => prefetchFile(path), evict: (path) => evictFile(path) },
};
