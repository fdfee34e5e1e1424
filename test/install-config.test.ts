/**
 * `npm ci` needs no environment variables and downloads nothing from outside the npm registry: onnxruntime-node's
 * install script, which on linux/x64 fetches CUDA files, is skipped on every npm (package.json "allowScripts" for
 * npm 11.16+, the global-agent stand-in of scripts/ort-install-guard for npm 10 and 11.0–11.15), and no npm prints a
 * warning about the project's configuration.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const ORT = join(ROOT, 'node_modules', 'onnxruntime-node');
const CUDA_FILE = join(ORT, 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so');

function run(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(command, [...args], { ...options, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}

/** The environment npm 10 gives a dependency's script when the user set nothing: no ONNX Runtime or npm flags. */
function plainEnv(home: string): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(npm_|ONNXRUNTIME_NODE_INSTALL)/i.test(key)),
  );
  return { ...env, HOME: home };
}

function networkNamespace(): string[] {
  try {
    execFileSync('unshare', ['-rn', 'true'], { stdio: 'ignore' });
    return ['unshare', '-rn'];
  } catch {
    return [];
  }
}

describe('install configuration', () => {
  it('npm prints no warning about the project configuration', async () => {
    const home = await mkdtemp(join(tmpdir(), 'sora-npm-home-'));
    try {
      const userconfig = join(home, '.npmrc');
      await writeFile(userconfig, '');
      const result = await run('npm', ['--userconfig', userconfig, 'pkg', 'get', 'name'], { cwd: ROOT, env: plainEnv(home) });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).not.toMatch(/Unknown (project|user|global) config/);
      expect(existsSync(join(ROOT, '.npmrc'))).toBe(false);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it("onnxruntime-node's install script, run as npm 10 runs it, skips the CUDA download (no network needed)", async () => {
    const home = await mkdtemp(join(tmpdir(), 'sora-npm-home-'));
    try {
      const [command, ...args] = [...networkNamespace(), process.execPath, join('script', 'install.js')];
      const result = await run(command!, args, { cwd: ORT, env: plainEnv(home) });
      expect(result.code, result.stderr).toBe(0);
      expect(existsSync(CUDA_FILE)).toBe(false);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('the stand-in is what onnxruntime-node resolves, and npm 11.16+ is told not to run the script at all', async () => {
    const resolved = createRequire(join(ORT, 'package.json')).resolve('global-agent');
    expect(realpathSync(resolved)).toBe(join(ROOT, 'scripts', 'ort-install-guard', 'index.js'));
    const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { allowScripts: Record<string, boolean> };
    expect(manifest.allowScripts['onnxruntime-node']).toBe(false);
  });

  it("a synthetic model written at the repository root, as the README's example does, is ignored by git", async (context) => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('models make-synthetic --preset opensora-1.2 -o synth/');
    const check = await run('git', ['check-ignore', '--no-index', 'synth/manifest.json', 'synth/stdit/stdit3_ST_0.onnx'], {
      cwd: ROOT,
      env: process.env,
    });
    if (check.code === 128) context.skip(`not a git checkout: ${check.stderr.trim()}`);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout.trim().split('\n')).toHaveLength(2);
  });
});
