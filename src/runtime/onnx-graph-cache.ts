/**
 * ONNX Runtime's optimised graphs, kept between processes. Creating a session spends most of its time optimising the
 * graph (fusions, layout changes: 280 of 480 ms for a paper-width STDiT block here); ORT can write the optimised
 * graph out, and a session made from that file with optimisation off skips the work and runs the same kernels. The
 * 'all' level's layout changes depend on the CPU and ORT's version, so an entry is keyed by those, the execution
 * provider, and the block's content (the sha256 of its files from the manifest). An entry holds the graph and a copy
 * of the weights (ORT writes the initialisers it keeps), so it costs the block's size on disk: opt-in.
 *
 * Entries are written to a temporary folder and renamed into place, so a reader never sees half of one and two
 * processes writing the same entry leave one. Nothing outside the cache folder is touched.
 */
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdir, readdir, rename, rm, stat, statfs, utimes } from 'node:fs/promises';
import { arch, cpus } from 'node:os';
import { join } from 'node:path';
import { unusedTooLong, type CachePruneOptions } from '../cache-age.js';
import { toolCacheDir } from '../cache-dir.js';
import { processAlive } from '../process-alive.js';

export const GRAPH_FILE = 'model.onnx';
export const WEIGHTS_FILE = 'model.data';

/** ~/.cache/ondevice-sora/onnx-graphs (or the macOS/XDG equivalents, cache-dir.ts). */
export function defaultGraphCacheDir(): string {
  return toolCacheDir('onnx-graphs');
}

/** Whether the cache folder is there (made now if need be) and this process may write into it. */
export function cacheWritable(cacheDir: string): boolean {
  try {
    mkdirSync(cacheDir, { recursive: true });
    accessSync(cacheDir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where a block's optimised graph lives, or would: the folder and the graph file in it. */
export interface GraphCacheEntry {
  readonly dir: string;
  readonly graph: string;
}

/** This machine's kind, read once: cpus() costs ~90 µs, and CI-DL asks for a block's entry at every prefetch and drop. */
let machine: string | undefined;

export function graphCacheEntry(cacheDir: string, contentKey: string, provider: string, ortVersion: string): GraphCacheEntry {
  machine ??= `${process.platform}-${arch()}-${cpus()[0]?.model.trim() ?? 'unknown'}`;
  const key = createHash('sha256').update(JSON.stringify([contentKey, provider, ortVersion, machine])).digest('hex').slice(0, 32);
  const dir = join(cacheDir, key);
  return { dir, graph: join(dir, GRAPH_FILE) };
}

export function hasEntry(entry: GraphCacheEntry): boolean {
  return existsSync(entry.graph);
}

/** The entry's graph and weights with their sizes; undefined while it is not (completely) there. */
export function entryFiles(entry: GraphCacheEntry): { path: string; bytes: number }[] | undefined {
  try {
    return [entry.graph, join(entry.dir, WEIGHTS_FILE)].map((path) => ({ path, bytes: statSync(path).size }));
  } catch {
    return undefined;
  }
}

/** The version of onnxruntime-node this process loads, read from its package file (the main thread never loads it). */
export function ortVersion(): string {
  return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
}

/** A fresh temporary folder beside the entry, for ORT to write the optimised graph into. */
export async function temporaryEntry(entry: GraphCacheEntry): Promise<GraphCacheEntry> {
  const dir = `${entry.dir}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  await mkdir(dir, { recursive: true });
  return { dir, graph: join(dir, GRAPH_FILE) };
}

/** Moves a written entry into place; when another process got there first, its entry stays and this one goes. */
export async function publishEntry(written: GraphCacheEntry, entry: GraphCacheEntry): Promise<void> {
  try {
    await rename(written.dir, entry.dir);
  } catch (error) {
    await rm(written.dir, { recursive: true, force: true });
    if (!hasEntry(entry)) throw error;
  }
}

export async function discardEntry(written: GraphCacheEntry): Promise<void> {
  await rm(written.dir, { recursive: true, force: true });
}

/** Room for an entry of `bytes` with 1 GiB to spare after it: a cache must not be what fills the disk. */
export async function roomFor(cacheDir: string, bytes: number): Promise<boolean> {
  await mkdir(cacheDir, { recursive: true });
  const stats = await statfs(cacheDir);
  return stats.bavail * stats.bsize >= bytes + 2 ** 30;
}

/** An entry's folder name; a temporary one adds `.<pid>-<8 hex>.tmp` (temporaryEntry). Nothing else is the cache's. */
const ENTRY_NAME = /^[0-9a-f]{32}$/;
const TEMPORARY_NAME = /^[0-9a-f]{32}\.(\d+)-[0-9a-f]{8}\.tmp$/;

/** Marks an entry used now (its graph file's mtime), for pruning by age; a failure only makes it look older. */
export async function touchEntry(entry: GraphCacheEntry): Promise<void> {
  const now = new Date();
  await utimes(entry.graph, now, now).catch(() => undefined);
}

export interface GraphCacheUsage {
  readonly dir: string;
  readonly entries: number;
  readonly bytes: number;
}

interface EntryOnDisk {
  readonly name: string;
  readonly bytes: number;
  readonly lastUsedMs: number;
}

async function entriesOnDisk(dir: string): Promise<EntryOnDisk[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((name) => ENTRY_NAME.test(name));
  const entries: EntryOnDisk[] = [];
  for (const name of names) {
    const graph = await stat(join(dir, name, GRAPH_FILE)).catch(() => undefined);
    const weights = await stat(join(dir, name, WEIGHTS_FILE)).catch(() => undefined);
    const bytes = graph === undefined || weights === undefined ? 0 : graph.size + weights.size;
    entries.push({ name, bytes, lastUsedMs: graph?.mtimeMs ?? 0 });
  }
  return entries;
}

/** How many entries the cache holds and their bytes (for `doctor` and `models cache prune`). */
export async function graphCacheUsage(dir: string): Promise<GraphCacheUsage> {
  const entries = await entriesOnDisk(dir);
  return { dir, entries: entries.length, bytes: entries.reduce((sum, entry) => sum + entry.bytes, 0) };
}

/**
 * `models cache prune`: removes entries unused for `unusedDays` (or all), and temporary folders whose writing process
 * is gone (a crash mid-write). Only names this cache writes are touched.
 */
export async function pruneGraphCache(dir: string, options: CachePruneOptions = {}): Promise<{ removed: EntryOnDisk[]; kept: GraphCacheUsage }> {
  const removed: EntryOnDisk[] = [];
  for (const entry of await entriesOnDisk(dir)) {
    if (!unusedTooLong(entry.lastUsedMs, options)) continue;
    await rm(join(dir, entry.name), { recursive: true, force: true });
    removed.push(entry);
  }
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const writer = TEMPORARY_NAME.exec(name);
    if (writer !== null && !processAlive(Number(writer[1]))) await rm(join(dir, name), { recursive: true, force: true });
  }
  return { removed, kept: await graphCacheUsage(dir) };
}
