/**
 * Which model folder a command uses when no --model is given: $ONDEVICE_SORA_MODEL if set, else the shipped shapes
 * model (the one that draws what a prompt says). The tiny random-weight model stays in the package for tests.
 */
import { packagePath } from '../package-root.js';

export const SHIPPED_MODELS = {
  shapes: packagePath('models', 'shapes'),
  tiny: packagePath('models', 'tiny'),
} as const;

export const MODEL_ENV = 'ONDEVICE_SORA_MODEL';

export function defaultModelDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[MODEL_ENV]?.trim();
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : SHIPPED_MODELS.shapes;
}
