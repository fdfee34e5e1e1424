/**
 * The few hub endpoints a download needs, over Node's fetch:
 *
 *     GET  {endpoint}/api/models/{repo}/revision/{revision}     → { sha, siblings: [{ rfilename }] }
 *     HEAD {endpoint}/{repo}/resolve/{revision}/{path}          → X-Repo-Commit, X-Linked-Etag / ETag, X-Linked-Size
 *     GET  (the same, following its redirect to the file store)  with Range: bytes=<offset>- to resume
 *
 * Redirects are followed by hand, so that the metadata of the hub's own answer is read before a redirect to the
 * file store and the token is sent to the hub only, never to another host.
 *
 * Why not the maintained client, @huggingface/hub (npm): version 2.17.5 was run against this project's test hub
 * (test/helpers/local-hub.ts) and its `downloadFileToCacheDir` fails four requirements here. A transfer cut halfway
 * leaves `<etag>.incomplete` and the next call starts again from byte 0 (no range request: no resume). An LFS file
 * whose bytes do not match the sha256 the hub announced is accepted and linked into the snapshot (no verification).
 * Files of revision `main` land in `snapshots/<the file's last commit>` and `refs/main` is never written, so a cache
 * filled by Python's huggingface_hub (`snapshots/<revision commit>`) is not found and ours is not Python's. It has
 * no progress callback to report bytes, rate and ETA from. What remains to write is these three requests.
 */
import * as z from 'zod';
import { errorMessage, SoraError } from '../errors.js';
import type { HubSettings } from './hub-settings.js';

const MAX_REDIRECTS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const RepoInfoSchema = z.looseObject({
  sha: z.string().regex(/^[0-9a-f]{40}$/, 'must be a 40-digit commit hash'),
  siblings: z.array(z.looseObject({ rfilename: z.string().min(1) })),
});

export interface RepoInfo {
  readonly commit: string;
  readonly files: readonly string[];
}

export interface FileInfo {
  readonly path: string;
  readonly commit: string;
  /** The hub's ETag without quotes: the sha256 of an LFS file, the git blob id of another. */
  readonly etag: string;
  readonly size: number;
  /** An LFS file, whose etag is its sha256. */
  readonly lfs: boolean;
}

export class HubClient {
  private readonly origin: string;

  constructor(private readonly settings: HubSettings) {
    this.origin = new URL(settings.endpoint).origin;
  }

  resolveUrl(repo: string, revision: string, path: string): string {
    const segments = path.split('/').map(encodeURIComponent).join('/');
    return `${this.settings.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${segments}`;
  }

  async repoInfo(repo: string, revision: string): Promise<RepoInfo> {
    const url = `${this.settings.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
    const response = await this.request(url, { method: 'GET', headers: { accept: 'application/json' } }, repo, { follow: 'all' });
    const body: unknown = await response.json().catch(() => undefined);
    const parsed = RepoInfoSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new SoraError('DOWNLOAD', `${url}: unexpected answer: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'not JSON'}`);
    }
    return { commit: parsed.data.sha, files: parsed.data.siblings.map((sibling) => sibling.rfilename) };
  }

  /** The file's metadata from the hub's own answer (a redirect to the file store is not followed). */
  async fileInfo(repo: string, revision: string, path: string): Promise<FileInfo> {
    const url = this.resolveUrl(repo, revision, path);
    const response = await this.request(url, { method: 'HEAD', headers: { 'accept-encoding': 'identity' } }, repo, { follow: 'same-origin' });
    const header = (name: string): string | undefined => response.headers.get(name) ?? undefined;
    const linkedEtag = header('x-linked-etag');
    const etag = normalizeEtag(linkedEtag ?? header('etag'));
    const commit = header('x-repo-commit');
    const size = Number(header('x-linked-size') ?? header('content-length'));
    if (etag === undefined || commit === undefined || !Number.isSafeInteger(size) || size < 0) {
      throw new SoraError('DOWNLOAD', `${url}: the answer lacks X-Repo-Commit, ETag or a size; is ${this.settings.endpoint} a Hugging Face hub?`);
    }
    return { path, commit, etag, size, lfs: linkedEtag !== undefined };
  }

  /** The file's bytes from `offset` on (status 206), or all of them (200) when the server ignores the range. */
  async download(repo: string, revision: string, path: string, offset: number, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    return this.request(this.resolveUrl(repo, revision, path), { method: 'GET', headers, ...(signal && { signal }) }, repo, {
      follow: 'all',
      okStatuses: [200, 206, 416],
    });
  }

  private async request(
    url: string,
    init: RequestInit & { headers: Record<string, string> },
    repo: string,
    options: { follow: 'all' | 'same-origin'; okStatuses?: readonly number[] },
  ): Promise<Response> {
    let current = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sameOrigin = new URL(current).origin === this.origin;
      const headers = { ...init.headers, ...(sameOrigin && this.settings.token && { authorization: `Bearer ${this.settings.token}` }) };
      let response: Response;
      try {
        response = await fetch(current, { ...init, headers, redirect: 'manual' });
      } catch (error) {
        if (init.signal?.aborted) throw init.signal.reason;
        throw new SoraError(
          'DOWNLOAD',
          `cannot reach ${new URL(current).origin} (${errorMessage((error as Error).cause ?? error)}); check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only files already in the cache`,
          { cause: error },
        );
      }
      const location = response.headers.get('location');
      if (REDIRECTS.has(response.status) && location !== null) {
        const next = new URL(location, current).href;
        if (options.follow === 'same-origin' && new URL(next).origin !== new URL(current).origin) return response;
        await response.body?.cancel();
        current = next;
        continue;
      }
      if (response.ok || options.okStatuses?.includes(response.status)) return response;
      await response.body?.cancel();
      throw this.refusal(response.status, repo, url);
    }
    throw new SoraError('DOWNLOAD', `${url}: more than ${MAX_REDIRECTS} redirects`);
  }

  private refusal(status: number, repo: string, url: string): SoraError {
    const page = `${this.settings.endpoint}/${repo}`;
    const tokens = `${this.settings.endpoint}/settings/tokens`;
    if (status === 401 && this.settings.token === undefined) {
      return new SoraError(
        'DOWNLOAD',
        `${repo}: the hub answered 401 (not logged in): the repository is gated or private, or does not exist; ` +
          `if it is gated, accept its terms at ${page} and set HF_TOKEN to a read token from ${tokens}`,
      );
    }
    if (status === 401) return new SoraError('DOWNLOAD', `${repo}: the hub refused HF_TOKEN (401): it is invalid or expired; make a new one at ${tokens}`);
    if (status === 403) {
      return new SoraError('DOWNLOAD', `${repo}: your token has no access (403): accept the repository's terms at ${page} with the account of HF_TOKEN`);
    }
    if (status === 404) return new SoraError('DOWNLOAD', `${url}: not found (404): no such repository, revision or file`);
    return new SoraError('DOWNLOAD', `${url}: the hub answered ${status}`);
  }
}

/** ETag header → the bare value (no W/ prefix, no quotes). */
export function normalizeEtag(etag: string | undefined): string | undefined {
  const value = etag?.replace(/^W\//, '').replace(/^"|"$/g, '').trim();
  return value === '' ? undefined : value;
}
