/**
 * One file of a repository into the hub cache's `blobs/<etag>`: resumed from `<etag>.incomplete` (an HTTP range
 * request from its size), retried from where it stopped when the connection drops, checked against the sha256 the
 * hub serves for LFS files (a mismatch deletes the file), renamed into place only when complete.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readFile, rename, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, SoraError } from '../errors.js';
import { processAlive } from '../process-alive.js';
import type { FileInfo, HubClient } from './hub-client.js';
import type { RepoCache } from './hub-cache.js';

const ATTEMPTS = 5;
const RETRY_DELAY_MS = 500;
/** Bytes gathered before each write, so that a 19 GB file is not written in millions of small pieces; on a slow
 * line at least every FLUSH_MS, so that progress moves and a killed process loses little. */
const WRITE_CHUNK = 8 << 20;
const FLUSH_MS = 1000;
const LOCK_POLL_MS = 250;

export interface BlobJob {
  readonly client: HubClient;
  readonly cache: RepoCache;
  readonly revision: string;
  readonly file: FileInfo;
  /** Bytes of the file present so far (resumed bytes included), after every write. */
  readonly onBytes?: (bytes: number) => void;
  /** Said once while another process downloads the same file. */
  readonly onWait?: (pid: number) => void;
  readonly signal?: AbortSignal;
}

function label(job: BlobJob): string {
  return `${job.cache.repo}/${job.file.path}`;
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.size ?? 0;
}

async function hashOf(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

/**
 * Creates the lock file with our pid already in it, or returns false when it exists. Linked from a file written
 * first: a lock file created empty and then written would, in between, read as one that a dead process left, and a
 * second process starting at the same moment would clear it and download the same file alongside.
 */
async function tryLock(path: string): Promise<boolean> {
  const own = `${path}.${process.pid}`;
  await writeFile(own, String(process.pid));
  try {
    await link(own, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(own).catch(() => undefined);
  }
}

/** Takes `path` as a lock file holding our pid; waits while a live process holds it, clears one a dead process left. */
async function withLock<T>(path: string, job: BlobJob, work: () => Promise<T>): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  let waited = false;
  for (;;) {
    job.signal?.throwIfAborted();
    if (await tryLock(path)) break;
    const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(holder) || holder <= 0 || !processAlive(holder)) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    if (!waited) job.onWait?.(holder);
    waited = true;
    await sleep(LOCK_POLL_MS);
  }
  try {
    return await work();
  } finally {
    await unlink(path).catch(() => undefined);
  }
}

/** Appends the response body to the file; returns the new size, or throws what broke the transfer. */
async function append(path: string, body: ReadableStream<Uint8Array>, start: number, hash: Hash | undefined, job: BlobJob): Promise<number> {
  const handle = await open(path, 'a');
  let size = start;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let flushed = Date.now();
  const flush = async (): Promise<void> => {
    flushed = Date.now();
    if (pendingBytes === 0) return;
    const data = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await handle.write(data);
    hash?.update(data);
    size += data.length;
    job.onBytes?.(size);
  };
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pending.push(value);
      pendingBytes += value.length;
      if (pendingBytes >= WRITE_CHUNK || Date.now() - flushed >= FLUSH_MS) await flush();
    }
    await flush();
    return size;
  } catch (error) {
    await flush(); // what arrived before the break is good: the next attempt resumes after it
    throw error;
  } finally {
    reader.releaseLock();
    await handle.close();
  }
}

async function transfer(job: BlobJob, incomplete: string): Promise<void> {
  const { file } = job;
  let size = await sizeOf(incomplete);
  if (size > file.size) {
    await truncate(incomplete, 0);
    size = 0;
  }
  let hash = file.lfs ? createHash('sha256') : undefined;
  if (hash !== undefined && size > 0) await hashOf(incomplete, hash);
  job.onBytes?.(size);
  const restart = async (): Promise<void> => {
    await truncate(incomplete, 0);
    size = 0;
    hash = file.lfs ? createHash('sha256') : undefined;
  };
  let failure: unknown;
  for (let attempt = 1; attempt <= ATTEMPTS && size < file.size; attempt++) {
    const response = await job.client.download(job.cache.repo, job.revision, file.path, size, job.signal);
    if (response.status === 416 || !rangeStartsAt(response, size)) {
      // The server cannot resume from here (416: the partial file is longer than it knows): start over.
      await response.body?.cancel();
      await restart();
      continue;
    }
    if (response.status === 200 && size > 0) await restart(); // the server ignored the range and sends it all
    if (response.body === null) break;
    try {
      size = await append(incomplete, response.body, size, hash, job);
    } catch (error) {
      if (job.signal?.aborted) throw job.signal.reason;
      failure = error;
      size = await sizeOf(incomplete);
      await sleep(RETRY_DELAY_MS * attempt);
    }
  }
  if (size !== file.size) {
    const why = failure === undefined ? 'the connection ended early' : errorMessage((failure as Error).cause ?? failure);
    throw new SoraError(
      'DOWNLOAD',
      `${label(job)}: download stopped at ${size} of ${file.size} bytes after ${ATTEMPTS} attempts (${why}); ` +
        'run the same command again to resume it',
      { cause: failure },
    );
  }
  const digest = hash?.digest('hex');
  if (digest !== undefined && digest !== file.etag) {
    await unlink(incomplete);
    throw new SoraError(
      'DOWNLOAD',
      `${label(job)}: sha256 ${digest} does not match the hub's ${file.etag}; the downloaded file was deleted, run the same command again to download it anew`,
    );
  }
}

function rangeStartsAt(response: Response, size: number): boolean {
  if (response.status !== 206) return true;
  const match = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '');
  return match !== null && Number(match[1]) === size;
}

/** Downloads the file into blobs/<etag> unless it is there; safe against other processes of this tool doing the same. */
export async function downloadBlob(job: BlobJob): Promise<void> {
  const { cache, file } = job;
  if (await cache.hasBlob(file.etag)) return;
  await withLock(cache.lock(file.etag), job, async () => {
    if (await cache.hasBlob(file.etag)) return; // another process finished it while we waited
    const incomplete = cache.incomplete(file.etag);
    await mkdir(dirname(incomplete), { recursive: true });
    await transfer(job, incomplete);
    await rename(incomplete, cache.blob(file.etag));
  });
}
