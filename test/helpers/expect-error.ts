import { expect } from 'vitest';
import { isSoraError, SoraError, type ErrorCode } from '../../src/errors.js';

/** Awaits a rejection and checks it is a SoraError with this code and a one-line message containing each fragment. */
export async function expectSoraError(promise: Promise<unknown>, code: ErrorCode, ...fragments: string[]): Promise<SoraError> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(SoraError);
  const sora = error as SoraError;
  expect(sora.code, sora.message).toBe(code);
  expect(sora.message).not.toContain('\n');
  for (const fragment of fragments) expect(sora.message).toContain(fragment);
  return sora;
}

/** Awaits a rejection that must be a SoraError, and returns it for the caller's own checks. */
export async function rejection(promise: Promise<unknown>): Promise<SoraError> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  if (!isSoraError(error)) throw new Error(`expected a SoraError, got ${String(error)}`);
  return error;
}
