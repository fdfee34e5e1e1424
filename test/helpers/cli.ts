/** Runs the built CLI (`node bin/ondevice-sora`) as a user would; `npm test` builds dist/ first. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'ondevice-sora');

/** CLI tests run on the random-weight tiny model (fast; 128² to 256², 17 to 68 frames) unless a test names another. */
export const TEST_MODEL_ENV = { ONDEVICE_SORA_MODEL: join(ROOT, 'models', 'tiny') };

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function assertBuilt(): void {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
}

export function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd, env: { ...process.env, NO_COLOR: '1', ...TEST_MODEL_ENV, ...env }, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr }),
    );
  });
}

export interface RunningCli {
  readonly child: ChildProcess;
  /** Settles when the process has exited: its exit status (128 + n if a signal n ended it) and output. */
  readonly done: Promise<CliResult>;
}

/** Starts the CLI in the background, for tests that signal it or run several at once. */
export function startCli(args: readonly string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', ...TEST_MODEL_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const signals: Record<string, number> = { SIGINT: 130, SIGKILL: 137, SIGTERM: 143 };
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? signals[signal ?? ''] ?? -1, stdout, stderr }));
  });
  return { child, done };
}

export function expectOneLineError(result: CliResult, code: number, ...fragments: string[]): void {
  expect(result.code, result.stderr).toBe(code);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  for (const fragment of fragments) expect(lines[0]).toContain(fragment);
}
