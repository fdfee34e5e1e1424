/**
 * Zod building blocks for command flags. Commander hands every value over as a string; these parse it strictly
 * (no "12abc", no empty string as 0) and turn the first problem into `--flag: problem, got "value"`.
 */
import { z } from 'zod';
import { SoraError } from '../errors.js';

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
    ({ width, height }) => width > 0 && height > 0 && width % 16 === 0 && height % 16 === 0,
    'width and height must be positive multiples of 16',
  );
