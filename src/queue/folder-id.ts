/**
 * The shared output folder's identity: a random id in a hidden file, made by the first batch queued into the folder.
 * Jobs carry it, and a worker takes a job only if its own `--output` holds the same id, so a worker pointed at
 * another folder (a missing mount, a typo) refuses the job instead of putting the video where no one looks.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';

export const FOLDER_ID_FILE = '.ondevice-sora-queue-folder';
const FOLDER_ID = /^[0-9a-f]{32}$/;

/**
 * The folder's id, made now if it has none: written aside and hard-linked into place, which fails if the file is
 * there, so two enqueuers agree on one id and no reader sees a half-written file.
 */
export async function ensureFolderId(folder: string): Promise<string> {
  const path = join(folder, FOLDER_ID_FILE);
  const aside = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.part`;
  try {
    await writeFile(aside, `${randomBytes(16).toString('hex')}\n`, { flag: 'wx' });
    await link(aside, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new SoraError('IO', `cannot write ${displayPath(path)}: ${errorMessage(error)}`, { cause: error });
    }
  } finally {
    await rm(aside, { force: true });
  }
  const id = await readFolderId(folder);
  if (id === undefined) throw new SoraError('IO', `${displayPath(path)}: not a folder id (remove it to make a new one)`);
  return id;
}

/** The id, or undefined when the folder has none (no batch was queued into it). */
export async function readFolderId(folder: string): Promise<string | undefined> {
  const text = await readFile(join(folder, FOLDER_ID_FILE), 'utf8').catch(() => undefined);
  const id = text?.trim();
  return id !== undefined && FOLDER_ID.test(id) ? id : undefined;
}
