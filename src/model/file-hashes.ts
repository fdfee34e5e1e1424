/**
 * sha256 of model files, checked once per file version and remembered. Loading a model always compares every file's
 * size with the manifest (cheap); its content is hashed the first time a command uses it, and what was verified is
 * recorded in the tool's cache, keyed by the file's identity and every stamp the file system keeps (path, device,
 * inode, size, mtime, ctime). ctime changes on every write and cannot be set back, so a file changed after it was
 * verified is hashed again, while the next run of an unchanged model hashes nothing (a 5 GB model would cost tens
 * of seconds each time). `models verify` hashes every file whatever the cache says.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { toolCacheDir } from '../cache-dir.js';
import { displayPath } from '../display-path.js';
import { allInOrder } from '../all-in-order.js';
import { SoraError } from '../errors.js';

export interface HashedFile {
  readonly path: string;
  readonly relativePath: string;
  readonly sha256?: string;
  readonly field: string;
}

export interface HashCheck {
  /** Files whose content was hashed now. */
  readonly hashed: number;
  /** Files the cache showed verified in this very version. */
  readonly known: number;
}

export function defaultHashCacheDir(): string {
  return toolCacheDir('verified');
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The cache entry name of this version of the file. */
async function versionStamp(path: string): Promise<string> {
  const real = await realpath(path);
  const info = await stat(real, { bigint: true });
  const identity = [real, info.dev, info.ino, info.size, info.mtimeNs, info.ctimeNs].join('\0');
  return createHash('sha256').update(identity).digest('hex');
}

/** The mismatch as the one-line MODEL error `verify` and `generate` both report. */
export function hashMismatch(manifestPath: string, file: HashedFile, actual: string, more = ''): SoraError {
  return new SoraError(
    'MODEL',
    `${displayPath(manifestPath)}: ${file.field}.sha256: ${file.relativePath} has sha256 ${actual}, the manifest says ${file.sha256}${more}`,
  );
}

/**
 * Checks the files that carry a sha256 against it, hashing only those not already verified in their current
 * version; records each verified one. A cache that cannot be written (read-only home) only costs hashing again.
 */
export function checkHashesOnFirstUse(
  manifestPath: string,
  files: readonly HashedFile[],
  cacheDir: string = defaultHashCacheDir(),
): Promise<HashCheck> {
  return startHashCheck(manifestPath, files, cacheDir).complete();
}

/** A check whose cache look-ups are under way: complete() hashes what they did not show verified. */
export interface StartedHashCheck {
  complete(): Promise<HashCheck>;
}

/**
 * checkHashesOnFirstUse in two parts, so that the cache look-ups (reading only) overlap other work (start-up time,
 * issue 17): they start now; hashing and recording wait for complete(), which also reports a failed look-up.
 */
export function startHashCheck(
  manifestPath: string,
  files: readonly HashedFile[],
  cacheDir: string = defaultHashCacheDir(),
): StartedHashCheck {
  // A file shared by several entries is checked once, at its first entry.
  const firsts = new Map<string, HashedFile>();
  for (const file of files) if (file.sha256 !== undefined && !firsts.has(file.path)) firsts.set(file.path, file);
  const toCheck = [...firsts.values()];
  // The cache is read for every file at once (start-up time); files are hashed one after another, in order.
  const stamps = allInOrder(toCheck.map((file) => () => cachedStamp(file, cacheDir)));
  stamps.catch(() => undefined); // complete() reports it
  return { complete: () => hashUnverified(manifestPath, toCheck, stamps) };
}

async function hashUnverified(
  manifestPath: string,
  toCheck: readonly HashedFile[],
  lookUps: Promise<{ stamp: string; verified: boolean }[]>,
): Promise<HashCheck> {
  let hashed = 0;
  let known = 0;
  const stamps = await lookUps;
  for (const [i, file] of toCheck.entries()) {
    const { stamp, verified } = stamps[i]!;
    if (verified) {
      known++;
      continue;
    }
    const actual = await sha256File(file.path);
    hashed++;
    if (actual !== file.sha256) throw hashMismatch(manifestPath, file, actual);
    await recordVerified(stamp, actual);
  }
  return { hashed, known };
}

/** This file version's cache entry, and whether it records the file as verified with the manifest's sha256. */
async function cachedStamp(file: HashedFile, cacheDir: string): Promise<{ stamp: string; verified: boolean }> {
  const stamp = join(cacheDir, await versionStamp(file.path));
  return { stamp, verified: (await readFile(stamp, 'utf8').catch(() => undefined)) === file.sha256 };
}

/** Records a file version as verified (also after `models verify`, so the next generate hashes nothing). */
export async function recordVerifiedFile(path: string, sha256: string, cacheDir: string = defaultHashCacheDir()): Promise<void> {
  await recordVerified(join(cacheDir, await versionStamp(path)), sha256);
}

async function recordVerified(stamp: string, sha256: string): Promise<void> {
  // Written aside and renamed, so a concurrent reader never sees half a hash.
  const partial = `${stamp}.${process.pid}.part`;
  try {
    await mkdir(dirname(stamp), { recursive: true });
    await writeFile(partial, sha256);
    await rename(partial, stamp);
  } catch {
    // Not remembering is safe: the file is hashed again next time.
    await rm(partial, { force: true }).catch(() => undefined);
  }
}
