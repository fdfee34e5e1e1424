/**
 * Tests that need a Mac (the real CoreML bridge, the macOS build): elsewhere they skip, saying why, so a Linux run
 * lists them as skipped rather than passing them silently. `npm run check:mac` runs them on a Mac.
 */
import type { TestContext } from 'vitest';

export const DARWIN_ONLY_REASON = `macOS only: needs CoreML and the Objective-C++ bridge (this is ${process.platform}); run \`npm run check:mac\` on a Mac`;

/** Skips the running test off macOS, with the reason. */
export function darwinOnly(context: TestContext): void {
  if (process.platform !== 'darwin') context.skip(DARWIN_ONLY_REASON);
}
