/**
 * The compile cache of .mlpackage blocks (an .mlmodelc loads as it is). A package is keyed by a stamp that costs
 * no weight byte to compute: each file's relative path, size and mtime, plus the sha256 of the spec files that
 * define the model (Manifest.json and the model spec it names). Each package path has one entry
 * (entries/<sha256 of the path>.json) naming its compiled model. When the package at a path no longer matches its
 * stamp but only mtimes changed (a copy, a checkout, a re-download of the same files), the full content hash decides
 * whether the compiled model still fits; it is recorded in the entry, so the next such change reuses the compile.
 * Compiled copies take as much disk as the packages: `models cache prune` removes those whose package is gone or
 * changed, unused ones, and any compiled model no entry refers to; nothing else in the folder is touched.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import * as z from 'zod';
import { unusedTooLong, type CachePruneOptions } from '../cache-age.js';
import { packageSpecPath } from './coreml-package.js';

export { defaultCoreMLCacheDir } from './coreml-cache-dir.js';

const ENTRIES = 'entries';
const COMPILED_NAME = /^.+-[0-9a-f]{32}\.mlmodelc$/;

const EntrySchema = z.object({
  package: z.string(),
  /** sizes, mtimes and spec hash: equal stamps mean the compiled model fits without reading the package. */
  stamp: z.string(),
  /** sizes and spec hash only: equal shapes with different stamps mean only mtimes changed. */
  shape: z.string(),
  contentHash: z.string().optional(),
  compiled: z.string().regex(COMPILED_NAME),
  lastUsed: z.string(),
});
type Entry = z.infer<typeof EntrySchema>;

/** What the cache did, for the self-check's report and the tests. */
export interface CacheEvents {
  hits: number;
  compiles: number;
  /** Packages read in full (only ever after a stamp mismatch). */
  fullHashes: number;
  /** Compiled models reused after a full hash showed the package unchanged. */
  reused: number;
}

async function packageFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

/** SHA-256 over every file's relative path, size and bytes, in path order. */
export async function packageContentHash(root: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of await packageFiles(root)) {
    const { size } = await stat(join(root, file));
    hash.update(`${file}\0${size}\0`);
    for await (const chunk of createReadStream(join(root, file))) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

interface Stamp {
  readonly stamp: string;
  readonly shape: string;
}

/**
 * The cheap key of a package: its real path, stats of every file and the hash of its (small) spec files. The path
 * is part of it so that two packages alike in sizes and mtimes (archives extracted at the same second) never share
 * a compiled model.
 */
export async function packageStamp(root: string): Promise<Stamp> {
  const files = await packageFiles(root);
  const specFiles = ['Manifest.json', relative(root, await packageSpecPath(root)).split(sep).join('/')];
  const spec = createHash('sha256');
  for (const file of specFiles) spec.update(`${file}\0`).update(await readFile(join(root, file)));
  const stamp = createHash('sha256').update(`${root}\0`);
  const shape = createHash('sha256');
  for (const file of files) {
    const { size, mtimeMs } = await stat(join(root, file));
    shape.update(`${file}\0${size}\0`);
    stamp.update(`${file}\0${size}\0${mtimeMs}\0`);
  }
  const specHash = spec.digest('hex');
  return { stamp: stamp.update(specHash).digest('hex'), shape: shape.update(specHash).digest('hex') };
}

async function readEntry(path: string): Promise<Entry | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const parsed = EntrySchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined; // a torn or foreign file: treated as no entry, rewritten on the next compile
  }
}

/** Written aside and renamed, so a concurrent reader never sees half an entry. */
async function writeEntry(path: string, entry: Entry): Promise<void> {
  const partial = `${path}.${process.pid}.tmp`;
  await writeFile(partial, `${JSON.stringify(entry, null, 2)}\n`);
  await rename(partial, path);
}

export class CoreMLCompileCache {
  readonly events: CacheEvents = { hits: 0, compiles: 0, fullHashes: 0, reused: 0 };

  constructor(readonly dir: string) {}

  /** The compiled model of the package at `packagePath`, compiling it with `compile(compiledPath)` when needed. */
  async compiled(packagePath: string, compile: (compiledPath: string) => Promise<void>): Promise<string> {
    const real = await realpath(packagePath);
    const entryPath = join(this.dir, ENTRIES, `${createHash('sha256').update(real).digest('hex')}.json`);
    const [entry, current] = await Promise.all([readEntry(entryPath), packageStamp(real)]);
    const now = new Date().toISOString();
    const fits = async (compiled: string): Promise<boolean> => (await stat(join(this.dir, compiled)).catch(() => undefined))?.isDirectory() === true;

    if (entry?.stamp === current.stamp && (await fits(entry.compiled))) {
      this.events.hits++;
      await writeEntry(entryPath, { ...entry, lastUsed: now });
      return join(this.dir, entry.compiled);
    }
    let contentHash: string | undefined;
    if (entry?.shape === current.shape) {
      // Only mtimes differ: the content decides (one full read, recorded for the next time).
      this.events.fullHashes++;
      contentHash = await packageContentHash(real);
      if (entry.contentHash === contentHash && (await fits(entry.compiled))) {
        this.events.reused++;
        await writeEntry(entryPath, { ...entry, stamp: current.stamp, lastUsed: now });
        return join(this.dir, entry.compiled);
      }
    }
    const compiled = `${basename(real, '.mlpackage')}-${current.stamp.slice(0, 32)}.mlmodelc`;
    if (!(await fits(compiled))) {
      this.events.compiles++;
      await compile(join(this.dir, compiled));
    }
    await mkdir(join(this.dir, ENTRIES), { recursive: true });
    await writeEntry(entryPath, {
      package: real,
      ...current,
      ...(contentHash !== undefined && { contentHash }),
      compiled,
      lastUsed: now,
    });
    return join(this.dir, compiled);
  }
}

/** Bytes of every file under `path` (0 when it does not exist). */
async function treeBytes(path: string): Promise<number> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) return 0;
  if (!info.isDirectory()) return info.size;
  let bytes = 0;
  for (const name of await readdir(path)) bytes += await treeBytes(join(path, name));
  return bytes;
}

interface CachedModel {
  readonly compiled: string;
  readonly bytes: number;
}

export interface CacheUsage {
  readonly dir: string;
  readonly compiledModels: number;
  readonly bytes: number;
}

async function compiledModels(dir: string): Promise<CachedModel[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return Promise.all(
    names.filter((name) => COMPILED_NAME.test(name)).map(async (name) => ({ compiled: name, bytes: await treeBytes(join(dir, name)) })),
  );
}

/** How many compiled models the cache holds and their bytes on disk (for `doctor`). */
export async function cacheUsage(dir: string): Promise<CacheUsage> {
  const models = await compiledModels(dir);
  return { dir, compiledModels: models.length, bytes: models.reduce((sum, model) => sum + model.bytes, 0) };
}

export interface PruneResult {
  readonly removed: readonly CachedModel[];
  readonly kept: CacheUsage;
}

/** Why an entry goes: its package is gone or changed, it was not used lately, or everything goes. */
async function entryIsStale(entry: Entry, options: CachePruneOptions): Promise<boolean> {
  if (unusedTooLong(Date.parse(entry.lastUsed), options)) return true;
  const current = await packageStamp(entry.package).catch(() => undefined);
  return current?.stamp !== entry.stamp;
}

/** `models cache prune`: removes stale entries, then every compiled model no remaining entry refers to. */
export async function pruneCache(dir: string, options: CachePruneOptions = {}): Promise<PruneResult> {
  const entriesDir = join(dir, ENTRIES);
  const names = (await readdir(entriesDir).catch(() => [] as string[])).filter((name) => /^[0-9a-f]{64}\.json$/.test(name));
  const referenced = new Set<string>();
  for (const name of names) {
    const entry = await readEntry(join(entriesDir, name));
    if (entry === undefined || (await entryIsStale(entry, options))) await rm(join(entriesDir, name), { force: true });
    else referenced.add(entry.compiled);
  }
  const removed: CachedModel[] = [];
  for (const model of await compiledModels(dir)) {
    if (referenced.has(model.compiled)) continue;
    await rm(join(dir, model.compiled), { recursive: true, force: true });
    removed.push(model);
  }
  return { removed, kept: await cacheUsage(dir) };
}
