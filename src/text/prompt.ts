import { SoraError } from '../errors.js';

/**
 * The text the tokenizer sees: the user's prompt plus Open-Sora 1.2's aesthetic-score suffix, which the model was
 * trained with. `aes` null leaves the prompt as typed (`--no-aes`).
 * Open-Sora's `clean_caption` is deliberately not applied, as in the On-device Sora app.
 */
export function buildPrompt(text: string, aes: number | null): string {
  if (text.trim() === '') throw new SoraError('INPUT', 'prompt is empty');
  return aes === null ? text : `${text} aesthetic score: ${formatOneDecimal(aes)}.`;
}

/**
 * Python's `'%.1f' % x`. JavaScript's toFixed(1) breaks exact ties upwards (6.25 → "6.3") where C/Python round
 * half to even (→ "6.2"). A binary double is an exact tie at one decimal only when it is an odd multiple of 1/4
 * (multiplying by 4 is exact), so only those are corrected; everything else is already right.
 */
export function formatOneDecimal(x: number): string {
  const quarters = x * 4;
  const isExactTie = Number.isInteger(quarters) && quarters % 2 !== 0;
  if (!isExactTie) return x.toFixed(1);
  const lower = Math.floor(x * 10);
  const even = lower % 2 === 0 ? lower : lower + 1;
  return (even / 10).toFixed(1);
}
