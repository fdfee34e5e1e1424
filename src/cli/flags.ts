/**
 * Zod building blocks for command flags. Commander hands every value over as a string; these parse it strictly
 * (no "12abc", no empty string as 0) and turn the first problem into `--flag: problem, got "value"`.
 */
import * as z from 'zod';
import { SoraError } from '../errors.js';
import { LIMITS } from '../model/limits.js';

const UNSIGNED = /^\d+$/;
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export function integerFlag(min: number, max: number, message: string) {
  return z
    .string()
    .trim()
    .regex(UNSIGNED, message)
    .transform(Number)
    .pipe(z.number().min(min, message).max(max, message));
}

export function numberFlag(message: string, check: (value: number) => boolean) {
  return z.string().trim().regex(DECIMAL, message).transform(Number).pipe(z.number().refine(check, message));
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** Every flag checked at once, before anything is loaded; the first problem becomes a USAGE error naming the flag. */
export function parseFlags<T>(schema: z.ZodType<T>, options: Record<string, unknown>): T {
  const parsed = schema.safeParse(options);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const key = String(issue.path[0]);
  const raw = options[key];
  const got = typeof raw === 'string' ? `, got "${raw}"` : '';
  throw new SoraError('USAGE', `--${kebab(key)}: ${issue.message}${got}`);
}

const RESOLUTION_MESSAGE = `width and height must be multiples of 16 from 16 to ${LIMITS.side}`;

/** `WIDTHxHEIGHT` in pixels, both positive multiples of 16 (the VAE scales by 8, the STDiT patches are 2×2). */
export const resolutionFlag = z
  .string()
  .trim()
  .regex(/^\d+x\d+$/, 'must be WIDTHxHEIGHT, e.g. 256x256')
  .transform((text) => {
    const [width = 0, height = 0] = text.split('x').map(Number);
    return { width, height };
  })
  .refine(
    ({ width, height }) => [width, height].every((side) => side > 0 && side <= LIMITS.side && side % 16 === 0),
    RESOLUTION_MESSAGE,
  );

/** Denoising steps: 1 to LIMITS.steps. */
export const stepsFlag = integerFlag(1, LIMITS.steps, `must be an integer from 1 to ${LIMITS.steps}`);

/** Frames: a multiple of 17 (the VAE makes 17 frames from 5 latent frames), at most LIMITS.numFrames. */
export const numFramesFlag = integerFlag(17, LIMITS.numFrames, `must be a multiple of 17 from 17 to ${LIMITS.numFrames}`).refine(
  (value) => value % 17 === 0,
  `must be a multiple of 17 from 17 to ${LIMITS.numFrames} (the VAE makes 17 frames from 5 latent frames)`,
);
