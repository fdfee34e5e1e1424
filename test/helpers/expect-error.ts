import { expect } from 'vitest';
import { SoraError, type ErrorCode } from '../../src/errors.js';

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
