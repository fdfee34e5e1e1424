/** What is really wrong when a file cannot be created in an output folder, in words rather than an errno. */
import { mkdir, stat, statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';

/** statfs() types of file systems that exist in memory only and do not take new files (Linux magic numbers). */
const VIRTUAL_FILE_SYSTEMS: Readonly<Record<number, string>> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x1cd1: 'devpts',
};

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** `output folder X <reason>` for a failure to create something directly inside `folder`. */
export async function folderError(folder: string, error: unknown): Promise<SoraError> {
  return new SoraError('IO', `output folder ${displayPath(folder)} ${await folderReason(folder, error)}`, { cause: error });
}

async function folderReason(folder: string, error: unknown): Promise<string> {
  switch (errnoOf(error)) {
    case 'EROFS':
      return 'is on a read-only file system';
    case 'EACCES':
    case 'EPERM':
      return 'is not writable (permission denied)';
    case 'ENOSPC':
      return 'is on a full disk (no space left)';
    case 'EDQUOT':
      return 'is over its disk quota';
    case 'ENOTDIR':
      return 'is not a folder';
    case 'ENOENT': {
      const stats = await stat(folder).catch(() => undefined);
      if (stats === undefined) return 'does not exist';
      if (!stats.isDirectory()) return 'is not a folder';
      const type = (await statfs(folder).catch(() => undefined))?.type;
      const virtual = type === undefined ? undefined : VIRTUAL_FILE_SYSTEMS[type];
      return virtual === undefined
        ? `does not accept new files (${errorMessage(error)})`
        : `is on the ${virtual} virtual file system, which does not hold files`;
    }
    default:
      return `cannot be written: ${errorMessage(error)}`;
  }
}

/**
 * Makes an output folder and any parents (nothing if it exists). On failure the message names the folder that
 * refused, with the real reason: Node's recursive mkdir reports ENOENT for a parent on a read-only file system.
 */
export async function makeOutputFolder(folder: string): Promise<void> {
  const target = resolve(folder);
  try {
    await mkdir(target, { recursive: true });
  } catch (error) {
    let missing = target;
    while (dirname(missing) !== missing && (await stat(dirname(missing)).catch(() => undefined)) === undefined) {
      missing = dirname(missing);
    }
    const cause = await mkdir(missing).then(() => error, (direct: unknown) => direct);
    const reason = await folderReason(dirname(missing), cause);
    throw new SoraError('IO', `cannot make output folder ${displayPath(target)}: ${displayPath(dirname(missing))} ${reason}`, {
      cause,
    });
  }
}
