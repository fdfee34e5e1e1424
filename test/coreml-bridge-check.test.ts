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
    expect(output).toMatch(/[1-9]\d* iPhone app files \(ios\/SoraRunner, all but the UIKit app\.mm\) type-check too/);
    expect(output).toMatch(/runner_core_test: \d+ checks, 0 failed/);
    expect(status).toBe(0);
  });

  it('fails when the bridge calls a CoreML method that does not exist', (context) => {
    const copy = mkdtempSync(join(tmpdir(), 'sora-bridge-'));
    try {
      cpSync('native/coreml-bridge', copy, { recursive: true });
      const addon = join(copy, 'coreml_core.mm');
      const source = readFileSync(addon, 'utf8');
      expect(source).toContain('predictionFromFeatures:provider');
      writeFileSync(addon, source.replace('predictionFromFeatures:provider', 'predictionFromFeature:provider'));
      const { status, output } = check(copy);
      if (status === PREREQUISITES_MISSING) context.skip(`check-coreml-bridge prerequisites missing: ${output.trim()}`);
      expect(status).toBe(1);
      expect(output).toContain("instance method '-predictionFromFeature:options:error:' not found");
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('CoreML API availability check (scripts/check-coreml-availability.mjs)', () => {
  const HEADER = 'native/coreml-bridge/coreml_api_subset.h';

  function availability(header: string): { status: number | null; output: string } {
    const dir = mkdtempSync(join(tmpdir(), 'sora-availability-'));
    try {
      writeFileSync(join(dir, 'subset.h'), header);
      const result = spawnSync(process.execPath, ['scripts/check-coreml-availability.mjs', join(dir, 'subset.h'), 'CMakeLists.txt'], {
        encoding: 'utf8',
      });
      return { status: result.status, output: `${result.stdout}${result.stderr}` };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('passes on the committed header: every declaration has its availability, none newer than macOS 13.0', () => {
    const { status, output } = availability(readFileSync(HEADER, 'utf8'));
    expect(output).toContain('none newer than macOS 13.0');
    expect(status).toBe(0);
  });

  it('fails on a declaration without API_AVAILABLE, and on an API newer than the deployment target', () => {
    const header = readFileSync(HEADER, 'utf8');
    const unannotated = header.replace(
      'MLModelDescription* modelDescription API_AVAILABLE(macos(10.13), ios(11.0));',
      'MLModelDescription* modelDescription;',
    );
    expect(unannotated).not.toBe(header);
    const missing = availability(unannotated);
    expect(missing.status).toBe(1);
    expect(missing.output).toMatch(/modelDescription;: no API_AVAILABLE/);

    const newer = availability(header.replace('outputBackings API_AVAILABLE(macos(11.0)', 'outputBackings API_AVAILABLE(macos(14.0)'));
    expect(newer.status).toBe(1);
    expect(newer.output).toContain('macOS 14.0 API, newer than the deployment target 13.0');
  });
});
