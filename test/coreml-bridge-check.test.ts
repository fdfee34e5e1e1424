/**
 * Runs scripts/check-coreml-bridge.sh: the Objective-C++ CoreML bridge must type-check against GNUstep's
 * Foundation and the CoreML subset header, and the check must fail on a bridge with a real type error.
 * Skipped, with the reason, where clang or the GNUstep headers are missing (Debian: clang libgnustep-base-dev).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

const SCRIPT = 'scripts/check-coreml-bridge.sh';
const PREREQUISITES_MISSING = 2;

function check(bridgeDir?: string): { status: number | null; output: string } {
  const result = spawnSync('bash', [SCRIPT, ...(bridgeDir ? [bridgeDir] : [])], { encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('CoreML bridge syntax-and-type check (clang + GNUstep)', () => {
  it('passes on the bridge as committed', (context) => {
    const { status, output } = check();
    if (status === PREREQUISITES_MISSING) context.skip(`check-coreml-bridge prerequisites missing: ${output.trim()}`);
    expect(output).toContain('strided_copy: all checks passed');
    expect(output).toMatch(/\d+ Objective-C\+\+ files type-check/);
    expect(status).toBe(0);
  });

  it('fails when the bridge calls a CoreML method that does not exist', (context) => {
    const copy = mkdtempSync(join(tmpdir(), 'sora-bridge-'));
    try {
      cpSync('native/coreml-bridge', copy, { recursive: true });
      const addon = join(copy, 'addon.mm');
      const source = readFileSync(addon, 'utf8');
      expect(source).toContain('predictionFromFeatures:provider');
      writeFileSync(addon, source.replace('predictionFromFeatures:provider', 'predictionFromFeature:provider'));
      const { status, output } = check(copy);
      if (status === PREREQUISITES_MISSING) context.skip(`check-coreml-bridge prerequisites missing: ${output.trim()}`);
      expect(status).toBe(1);
      expect(output).toContain("instance method '-predictionFromFeature:error:' not found");
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});
