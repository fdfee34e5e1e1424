import type { RunnerLimits } from '../runtime/runner-messages.js';

/** What one client may ask of `serve` unless its flags say otherwise. */
export const DEFAULT_LIMITS: RunnerLimits = {
  maxFrameBytes: 256 * 2 ** 20,
  maxHeaderBytes: 1 * 2 ** 20,
  maxHandles: 4096,
  maxInFlight: 4,
};
