/**
 * `npm run check:mac` (scripts/check-mac.ts): off macOS it refuses politely and runs nothing; its verdict lines and
 * frame comparison are checked here. On a Mac it is the self-check itself (README, "The Mac self-check").
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assumptions, notMacMessage, psnr, verdictLine } from '../scripts/check-mac.js';
import { ROOT } from './helpers/cli.js';

describe('npm run check:mac', () => {
  it.skipIf(process.platform === 'darwin')('refuses politely off macOS: one line saying what to do on a Mac, exit 8, nothing built', () => {
    const existed = existsSync(join(ROOT, 'build', 'check-mac'));
    const run = spawnSync('npm', ['run', '--silent', 'check:mac'], { cwd: ROOT, encoding: 'utf8' });
    expect(run.status).toBe(8);
    expect(run.stdout).toBe(`${notMacMessage(process.platform)}\n`);
    expect(run.stdout).toContain('npm ci && npm run check:mac');
    expect(existsSync(join(ROOT, 'build', 'check-mac'))).toBe(existed);
  });

  it('checks each assumption once, and starts with none checked', () => {
    const list = assumptions();
    expect(list.map((assumption) => assumption.id)).toEqual([
      'build-memory',
      'build-bridge',
      'darwin-tests',
      'nsrange-fixed',
      'nsrange-upper',
      'spec-compiled',
      'spec-too-new',
      'compute-units',
      'output-backings',
      'compile-cache',
      'golden-blocks',
      'generate',
      'ios-build',
      'ios-runner',
      'ios-generate',
    ]);
    expect(new Set(list.map((assumption) => assumption.verdict))).toEqual(new Set(['not checked']));
    const line = verdictLine({ ...list[3]!, verdict: 'does not hold', detail: 'axis 1 reported as {16, 0}' });
    expect(line).toBe(
      'does not hold a fixed axis inside a range constraint is an NSRange of length 1 (sizeRangeForDimension) — axis 1 reported as {16, 0}',
    );
  });

  it('compares frames by PSNR: identical is infinite, one level off everywhere is 48.1 dB', () => {
    const frame = Uint8Array.from({ length: 300 }, (_, i) => i % 256);
    expect(psnr(frame, frame)).toBe(Infinity);
    const shifted = frame.map((value) => (value === 255 ? 254 : value + 1));
    expect(psnr(frame, shifted)).toBeCloseTo(48.13, 2);
    expect(() => psnr(frame, frame.subarray(1))).toThrow(/sizes differ/);
  });
});
