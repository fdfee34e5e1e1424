/**
 * Some files of one repository at one revision, in the hub cache: planned first (which files, which are already
 * cached, how many bytes are missing) so that disk space can be checked before the first byte, then fetched into
 * `snapshots/<commit>/`. With HF_HUB_OFFLINE the plan comes from the cache alone and nothing is fetched.
 */
import { stat } from 'node:fs/promises';
import { displayPath } from '../display-path.js';
import { SoraError } from '../errors.js';
import { downloadBlob } from './download-blob.js';
import { RepoCache } from './hub-cache.js';
import type { FileInfo, HubClient } from './hub-client.js';
import type { HubSettings } from './hub-settings.js';

export interface SnapshotRequest {
  readonly repo: string;
  readonly revision: string;
  /** The files to fetch, chosen from the repository's file list (throws a SoraError when what is needed is absent). */
  readonly pick: (files: readonly string[]) => string[];
}

export interface PlannedFile {
  readonly path: string;
  readonly bytes: number;
  /** Bytes still to download (0 when the file is cached; less than `bytes` when a partial download resumes). */
  readonly missing: number;
  /** Set when the file is not yet linked into the snapshot. */
  readonly info?: FileInfo;
}

export interface SnapshotPlan {
  readonly repo: string;
  readonly revision: string;
  readonly commit: string;
  readonly files: readonly PlannedFile[];
  /** snapshots/<commit>: the folder the files appear in. */
  readonly folder: string;
}

export interface FetchEvents {
  readonly onFileStart?: (plan: SnapshotPlan, file: PlannedFile) => void;
  readonly onBytes?: (plan: SnapshotPlan, file: PlannedFile, bytes: number) => void;
  readonly onFileDone?: (plan: SnapshotPlan, file: PlannedFile) => void;
  readonly onWait?: (plan: SnapshotPlan, file: PlannedFile, pid: number) => void;
  readonly signal?: AbortSignal;
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.size ?? 0;
}

async function planOffline(settings: HubSettings, request: SnapshotRequest): Promise<SnapshotPlan> {
  const cache = new RepoCache(settings.cacheDir, request.repo);
  const commit = await cache.commitOf(request.revision);
  const files = commit === undefined ? [] : await cache.snapshotFiles(commit);
  if (commit === undefined || files.length === 0) {
    throw new SoraError(
      'DOWNLOAD',
      `HF_HUB_OFFLINE is set and ${request.repo} at ${request.revision} is not in the cache (${displayPath(cache.folder)}); ` +
        'unset HF_HUB_OFFLINE to download it',
    );
  }
  const planned: PlannedFile[] = [];
  for (const path of request.pick(files)) {
    if (!(await cache.hasSnapshotFile(commit, path))) {
      throw new SoraError('DOWNLOAD', `HF_HUB_OFFLINE is set and ${request.repo}/${path} at ${commit} is not in the cache (a broken link)`);
    }
    planned.push({ path, bytes: await sizeOf(cache.snapshot(commit, path)), missing: 0 });
  }
  return { repo: request.repo, revision: request.revision, commit, files: planned, folder: cache.snapshot(commit) };
}

export async function planSnapshot(client: HubClient, settings: HubSettings, request: SnapshotRequest): Promise<SnapshotPlan> {
  if (settings.offline) return planOffline(settings, request);
  const cache = new RepoCache(settings.cacheDir, request.repo);
  const { commit, files } = await client.repoInfo(request.repo, request.revision);
  const planned: PlannedFile[] = [];
  for (const path of request.pick(files)) {
    if (await cache.hasSnapshotFile(commit, path)) {
      planned.push({ path, bytes: await sizeOf(cache.snapshot(commit, path)), missing: 0 });
      continue;
    }
    // By commit, not branch: every file then comes from the same revision even if the branch moves meanwhile.
    const info = await client.fileInfo(request.repo, commit, path);
    const have = (await cache.hasBlob(info.etag)) ? info.size : Math.min(info.size, await sizeOf(cache.incomplete(info.etag)));
    planned.push({ path, bytes: info.size, missing: info.size - have, info });
  }
  return { repo: request.repo, revision: request.revision, commit, files: planned, folder: cache.snapshot(commit) };
}

/** Downloads what the plan lacks and links every file into the snapshot; records the revision's commit in refs/. */
export async function fetchSnapshot(client: HubClient, settings: HubSettings, plan: SnapshotPlan, events: FetchEvents = {}): Promise<string> {
  const cache = new RepoCache(settings.cacheDir, plan.repo);
  for (const file of plan.files) {
    const info = file.info;
    if (info === undefined) continue;
    events.onFileStart?.(plan, file);
    await downloadBlob({
      client,
      cache,
      revision: plan.commit,
      file: info,
      onBytes: (bytes) => events.onBytes?.(plan, file, bytes),
      onWait: (pid) => events.onWait?.(plan, file, pid),
      ...(events.signal && { signal: events.signal }),
    });
    await cache.linkSnapshot(plan.commit, file.path, info.etag);
    events.onFileDone?.(plan, file);
  }
  if (!settings.offline) await cache.writeRef(plan.revision, plan.commit);
  return plan.folder;
}
