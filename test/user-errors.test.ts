/**
 * Failures whose cause is the user's input or the user's system get the exit status of their kind, never 70
 * ("internal error"), and a reader that goes away ends the process quietly. The real CLI, as a user runs it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES, systemError } from '../src/errors.js';
import { assertBuilt, cli, expectOneLineError, ROOT, TEST_MODEL_ENV } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { tempDir, writeManifest } from './helpers/model-folder.js';
import { syntheticModelProblem } from './helpers/synthetic-model.js';

const TINY = TEST_MODEL_ENV.ONDEVICE_SORA_MODEL;
let root: string;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-user-errors-');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The CLI with its stdout (or stderr) read end closed before it writes anything. */
async function withClosedReader(stream: 'stdout' | 'stderr', args: readonly string[]) {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'ondevice-sora'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...TEST_MODEL_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child[stream].destroy();
  const other = stream === 'stdout' ? child.stderr : child.stdout;
  let text = '';
  other.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return { code, signal, text };
}

describe('a closed stdout or stderr (`ondevice-sora --help | head`)', () => {
  it.each([
    ['stdout', ['--help']],
    ['stdout', ['generate', '--help']],
    ['stdout', ['models', 'list', '--json']],
    ['stderr', ['generate', 'x', '-o', 'x.mp4', '--steps', 'zero']],
  ] as const)('%s closed, %j: exit 141 as SIGPIPE would, no stack trace', async (stream, args) => {
    const result = await withClosedReader(stream, args);
    recordFaults({ faultsInjected: 1 });
    expect(result.signal).toBeNull();
    expect(result.code, result.text).toBe(141);
    expect(result.text).not.toMatch(/EPIPE|at .*\.js:\d+/);
  });
});

describe('user errors that used to exit 70', () => {
  it.each([
    ['--steps', '99999999999'],
    ['--steps', '1001'],
    ['--num-frames', String(17 * 1_000_000)],
    ['--resolution', '99999984x16'],
    ['--lpl', '99999999999'],
    ['--tdtm', '99999999999'],
  ])('%s %s → usage (2), naming the flag and its range, before any model work', async (flag, value) => {
    const result = await cli(['generate', 'a cat', '-o', join(root, 'never.mp4'), flag, value]);
    recordFaults({ badInputs: 1 });
    expectOneLineError(result, ERROR_EXIT_CODES.USAGE, `${flag}:`, value);
  });

  type ManifestJson = { defaults: object; tokenizer: object; blocks: { weightBytes: number; inputs: { shape: unknown[] }[] }[] };
  it.each([
    ['defaults.resolution', (m: ManifestJson) => void (m.defaults = { ...m.defaults, resolution: '99999984x99999984', resolutions: ['99999984x99999984'] })],
    ['defaults.steps', (m: ManifestJson) => void (m.defaults = { ...m.defaults, steps: 99_999_999_999 })],
    ['defaults.numFrames', (m: ManifestJson) => void (m.defaults = { ...m.defaults, numFrames: 17e6, numFramesChoices: [17e6] })],
    ['tokenizer.maxLength', (m: ManifestJson) => void (m.tokenizer = { ...m.tokenizer, maxLength: 1e9 })],
    ['blocks[0].weightBytes', (m: ManifestJson) => void (m.blocks[0]!.weightBytes = 1e15)],
    ['blocks[0].inputs[0].shape[1]', (m: ManifestJson) => void (m.blocks[0]!.inputs[0]!.shape = [1, 1e15])],
    ['blocks[0].inputs[0].shape', (m: ManifestJson) => void (m.blocks[0]!.inputs[0]!.shape = [65536, 65536, 2])],
  ])('a manifest with a huge %s → manifest (4) from generate and verify, naming the field', async (field, mutate) => {
    const dir = join(root, `huge-${field}`);
    await cp(TINY, dir, { recursive: true });
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as ManifestJson;
    mutate(manifest);
    await writeManifest(dir, manifest);
    // verify first: on a tool without the bounds, generate with maxLength 1e9 would grow to 16 GB before failing.
    for (const args of [['models', 'verify', dir], ['generate', 'a cat', '-o', join(root, 'never.mp4'), '--model', dir]]) {
      recordFaults({ badInputs: 1 });
      expectOneLineError(await cli(args), ERROR_EXIT_CODES.MANIFEST, join(dir, 'manifest.json'), `${field}:`);
    }
  });
});

/** true, or why a small tmpfs cannot be mounted here (needs unprivileged user and mount namespaces). */
function tmpfsUsable(dir: string): true | string {
  try {
    execFileSync('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs "$0"', dir], { stdio: 'pipe' });
    return true;
  } catch (error) {
    return String((error as { stderr?: unknown }).stderr ?? error).trim().split('\n')[0] || 'unshare failed';
  }
}

describe('a full disk (ENOSPC) is an io error (7), and nothing is left behind', () => {
  it('generate --format frames onto a 200 KiB tmpfs: one line naming the frame and "No space left on device"', async (context) => {
    const disk = join(root, 'disk');
    await mkdir(disk);
    const usable = tmpfsUsable(disk);
    if (usable !== true) {
      context.skip(`cannot mount a small tmpfs here: ${usable}`);
      return;
    }
    // The CLI runs inside the namespace that holds the mount; `ls -A` then lists what the failed run left there.
    const script = 'mount -t tmpfs -o size=200k tmpfs "$0" && "$@"; code=$?; ls -A "$0"; exit $code';
    const command = [process.execPath, join(ROOT, 'bin', 'ondevice-sora'), '--quiet', 'generate', 'a cat', '-o', join(disk, 'frames')];
    const run = ['--format', 'frames', '--resolution', '128x128', '--steps', '1', '--seed', '3'];
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('unshare', ['-rm', 'sh', '-c', script, disk, ...command, ...run], {
        cwd: ROOT,
        env: { ...process.env, ...TEST_MODEL_ENV },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    recordFaults({ faultsInjected: 1, filesLeftBehind: result.stdout.trim() === '' ? 0 : result.stdout.trim().split('\n').length });
    expectOneLineError(result as { code: number; stdout: string; stderr: string }, ERROR_EXIT_CODES.IO, 'frame_', 'No space left on device');
    expect(result.stdout.trim()).toBe('');
  });

  it("a Node system error caused by the user's system maps to its kind, naming the path when it has one", async () => {
    const full = systemError(await writeFile('/dev/full', 'x').catch((reason: unknown) => reason));
    expect([full?.code, full?.message]).toEqual(['IO', 'no space left on the device (write)']);
    const notFolder = systemError(await mkdir('/dev/full/x').catch((reason: unknown) => reason));
    expect([notFolder?.code, notFolder?.message]).toEqual(['IO', '/dev/full/x: a part of the path is not a folder (mkdir)']);
    expect(systemError(new Error('not a system error'))).toBeUndefined();
  });
});

describe('Python dependencies are checked before any work', () => {
  it('models make-synthetic with jsonschema missing: dependency (8) at once, naming the Debian package, nothing written', async (context) => {
    const problem = await syntheticModelProblem();
    if (problem !== null) context.skip(problem);
    // A package of that name that fails to import, first on PYTHONPATH, hides the real one.
    const shadow = join(root, 'shadow', 'jsonschema');
    await mkdir(shadow, { recursive: true });
    await writeFile(join(shadow, '__init__.py'), "raise ImportError('jsonschema is hidden by the test')\n");
    const out = join(root, 'synthetic');
    const args = ['models', 'make-synthetic', '--preset', 'opensora-1.2', '-o', out, '--depth', '1', '--hidden', '64'];
    const result = await cli(args, { PYTHONPATH: join(root, 'shadow') });
    recordFaults({ faultsInjected: 1 });
    expectOneLineError(result, ERROR_EXIT_CODES.DEPENDENCY, 'cannot import jsonschema', 'apt-get install python3-jsonschema');
    expect(existsSync(out)).toBe(false);
    expect((await readdir(root)).filter((name) => name.includes('.part'))).toEqual([]);
  });
});
