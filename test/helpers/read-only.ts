/**
 * A real read-only mount for tests, made without privileges: the CLI runs inside a new user and mount namespace
 * (`unshare -rm`, util-linux) in which the folder is bind-mounted onto itself read-only. Only that process sees it
 * read-only; writes fail with EROFS as on a read-only disk, also for root (file modes would not stop root).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BIN, type CliResult, ROOT, TEST_MODEL_ENV } from './cli.js';

const run = promisify(execFile);
const MOUNT_READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"';

/** Why read-only mounts cannot be made here (no unshare, user namespaces disabled), or null. */
export async function readOnlyMountProblem(): Promise<string | null> {
  const dir = await mkdtemp(join(tmpdir(), 'sora-ro-probe-'));
  try {
    await run('unshare', ['-rm', 'sh', '-c', MOUNT_READ_ONLY, dir, 'true']);
    return null;
  } catch (error) {
    return `cannot make a read-only mount with unshare -rm here: ${String((error as Error).message).split('\n', 1)[0]}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs the CLI with `folder` mounted read-only for it alone. */
export function cliWithReadOnly(folder: string, args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      'unshare',
      ['-rm', 'sh', '-c', MOUNT_READ_ONLY, folder, process.execPath, BIN, ...args],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...TEST_MODEL_ENV } },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr }),
    );
  });
}
