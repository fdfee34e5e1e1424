/**
 * Which model folder a command uses when no --model is given: $ONDEVICE_SORA_MODEL if set, else the shipped shapes
 * model (the one that draws what a prompt says). The tiny random-weight model stays in the package for tests.
 */
import { fileURLToPath } from 'node:url';

/** Resolved from this file so it works from src/ and dist/ alike. */
export const SHIPPED_MODELS = {
  shapes: fileURLToPath(new URL('../../models/shapes', import.meta.url)),
  tiny: fileURLToPath(new URL('../../models/tiny', import.meta.url)),
} as const;

export const MODEL_ENV = 'ONDEVICE_SORA_MODEL';

export function defaultModelDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[MODEL_ENV]?.trim();
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : SHIPPED_MODELS.shapes;
}
