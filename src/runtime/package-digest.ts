/**
 * The content digest of a CoreML package folder (.mlpackage / .mlmodelc): what manifest.json records as a CoreML
 * block's sha256 (scripts/sora/manifest.py computes the same) and what keys the CoreML backend's compile cache.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

/** Every file under root, as '/'-separated paths relative to it, sorted. */
export async function packageFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

/** SHA-256 over every file's relative path, NUL, size in decimal, NUL, then its bytes, in path order. */
export async function packageContentHash(root: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of await packageFiles(root)) {
    const { size } = await stat(join(root, file));
    hash.update(`${file}\0${size}\0`);
    for await (const chunk of createReadStream(join(root, file))) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
