/**
 * scripts/build-native.mjs, the `install` script: each addon is its own target, so a compile error costs only that
 * addon and is reported with its own log; a missing cmake is reported with what to install on this platform
 * (`brew install cmake` on macOS). Runs the real cmake-js build in a copy of the project.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADDONS, installHint } from '../scripts/build-native.mjs';
import { ROOT } from './helpers/cli.js';
import { darwinOnly } from './helpers/darwin-only.js';
import { recordFaults } from './helpers/fault-ledger.js';

let project = '';
beforeEach(() => {
  project = mkdtempSync(join(tmpdir(), 'sora-build-native-'));
  for (const path of ['CMakeLists.txt', 'package.json', 'native', 'scripts/build-native.mjs']) {
    cpSync(join(ROOT, path), join(project, path), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'));
});
afterEach(() => rmSync(project, { recursive: true, force: true }));

/** Runs the install script in the copy (under nice: it compiles), with PATH replaced when `path` is given. */
function build(path?: string): { status: number | null; output: string } {
  const run =
    path === undefined
      ? spawnSync('nice', ['-n', '10', process.execPath, 'scripts/build-native.mjs'], { cwd: project, encoding: 'utf8' })
      : spawnSync(process.execPath, ['scripts/build-native.mjs'], { cwd: project, encoding: 'utf8', env: { ...process.env, PATH: path } });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

function breakSource(path: string): void {
  writeFileSync(join(project, path), `${readFileSync(join(project, path), 'utf8')}\nthis does not compile;\n`);
}

describe('build-native: what to install', () => {
  it('says brew install cmake on macOS and the Debian package elsewhere; the bridge is built on macOS only', () => {
    expect(installHint('darwin', 'cmake')).toContain('brew install cmake');
    expect(installHint('darwin', 'compiler')).toContain('xcode-select --install');
    expect(installHint('linux', 'cmake')).toContain('apt-get install cmake');
    expect(ADDONS.map((addon) => [addon.target, addon.platforms])).toEqual([
      ['sora_memory', ['linux', 'darwin']],
      ['sora_coreml', ['darwin']],
    ]);
  });

  it('without cmake: one line per addon naming what to install, exit 0', () => {
    recordFaults({ faultsInjected: 1 });
    // A PATH holding node alone: no cmake, as on a stock Mac.
    const bin = join(project, 'bin-without-cmake');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const { status, output } = build(bin);
    expect(status).toBe(0);
    const hint = installHint(process.platform, 'cmake');
    expect(output).toContain(`ondevice-sora: memory addon not built (cmake not found: ${hint})`);
    expect(existsSync(join(project, 'build', 'Release', 'sora_memory.node'))).toBe(false);
  });
});

describe('build-native: each addon alone', () => {
  it('a compile error in the memory addon is reported as its own, with its log; fixed, it builds', () => {
    recordFaults({ faultsInjected: 1 });
    const source = 'native/memory/addon.cc';
    const original = readFileSync(join(project, source), 'utf8');
    breakSource(source);
    const broken = build();
    expect(broken.status).toBe(0);
    expect(broken.output).toMatch(/ondevice-sora: memory addon not built \(compile error, see \S*build\/native-sora_memory\.log\); JavaScript fallbacks in use/);
    expect(readFileSync(join(project, 'build', 'native-sora_memory.log'), 'utf8')).toContain('this does not compile');
    writeFileSync(join(project, source), original);
    const fixed = build();
    expect(fixed.output).toContain('ondevice-sora: memory addon built');
    expect(existsSync(join(project, 'build', 'Release', 'sora_memory.node'))).toBe(true);
  });

  it('(macOS only) a compile error in the CoreML bridge leaves the memory addon built', (context) => {
    darwinOnly(context);
    breakSource('native/coreml-bridge/addon.mm');
    const { status, output } = build();
    expect(status).toBe(0);
    expect(output).toContain('ondevice-sora: memory addon built');
    expect(output).toMatch(/CoreML bridge not built \(compile error, see \S*native-sora_coreml\.log\)/);
    expect(existsSync(join(project, 'build', 'Release', 'sora_memory.node'))).toBe(true);
    expect(existsSync(join(project, 'build', 'Release', 'sora_coreml.node'))).toBe(false);
  });
});
