/**
 * When `models make-synthetic --overwrite` may replace a folder: when it is a model folder this tool can load, holding
 * its manifest.json and the files that manifest lists and nothing else (or nothing at all). A folder with anything
 * more in it (notes, another model's files, a checkpoint) is the user's, and is refused.
 */
import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import { NOT_OURS, type OutputKind } from '../video/replaceable.js';
import { loadModel, MANIFEST_FILE } from './manifest.js';

export const MODEL_FOLDER_OUTPUT: OutputKind = {
  async inTheWay(path, stats) {
    if (!stats.isDirectory()) return 'is not a folder; cannot replace it with a model folder';
    if ((await readdir(path)).length === 0) return undefined;
    let listed: Set<string>;
    try {
      const model = await loadModel(path);
      if (model.source.kind !== 'manifest') return `holds published CoreML packages, not a model folder with a manifest; ${NOT_OURS}`;
      listed = new Set([MANIFEST_FILE, ...[...model.tokenizer.files, ...model.blocks.flatMap((block) => block.files)].map((file) => file.relativePath)]);
    } catch (error) {
      return `is not a model folder (${errorMessage(error).split('\n', 1)[0]}); ${NOT_OURS}`;
    }
    const stranger = await firstUnlisted(path, '', listed);
    return stranger === undefined ? undefined : `holds ${stranger}, which its manifest does not list; ${NOT_OURS}`;
  },
};

async function firstUnlisted(root: string, prefix: string, listed: ReadonlySet<string>): Promise<string | undefined> {
  const entries: Dirent[] = await readdir(join(root, prefix), { withFileTypes: true });
  for (const entry of entries) {
    const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) {
      const inside = await firstUnlisted(root, relative, listed);
      if (inside !== undefined) return inside;
    } else if (!entry.isFile() || !listed.has(relative)) {
      return relative;
    }
  }
  return undefined;
}
