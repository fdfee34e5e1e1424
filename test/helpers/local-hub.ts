/**
 * A Hugging Face hub served on 127.0.0.1 for the pull tests: the endpoints and headers the real hub uses for
 * downloads, a separate "file store" origin that LFS files redirect to (as the real hub's CDN), and faults to
 * inject. Every request is logged so tests can assert what went over the wire.
 *
 *   GET  /api/models/{org}/{name}/revision/{rev}        → { id, sha, siblings: [{ rfilename }] }
 *   HEAD /{org}/{name}/resolve/{rev}/{path}             → LFS: 302 to the store, X-Linked-Etag (sha256), X-Linked-Size;
 *                                                         other files: 200, ETag (git blob id), Content-Length
 *   GET  the same                                        → the bytes (after the redirect for LFS), Range supported
 *   both carry X-Repo-Commit; gated repositories answer 401 without a token and 403 with a wrong one.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

const LFS_SUFFIXES = ['.safetensors', '.bin', '.model', '.msgpack', '.h5'];

export interface HubFile {
  readonly path: string;
  readonly data: Buffer;
}

export interface HubRepo {
  readonly commit: string;
  readonly branch?: string;
  /** Gated: requests need `Authorization: Bearer <token>`. */
  readonly token?: string;
  readonly files: readonly HubFile[];
}

/** Faults keyed by `org/name/path`. */
export interface HubFaults {
  /** The first transfer of the file (of more than one byte) sends half of it and then cuts the connection. */
  readonly truncateOnce: Set<string>;
  /** The hub announces a sha256 the bytes do not have. */
  readonly wrongChecksum: Set<string>;
  /** Transfers send this many bytes, then hang until the hub closes. */
  readonly stallAfter: Map<string, number>;
  /** The size the hub announces instead of the real one. */
  readonly claimedSize: Map<string, number>;
  /** Milliseconds between 16 KiB pieces of a transfer (a slow line). */
  readonly slow: Map<string, number>;
}

export interface HubRequest {
  readonly server: 'hub' | 'store';
  readonly method: string;
  readonly path: string;
  readonly range?: string;
  readonly authorization?: string;
  readonly status: number;
}

interface StoredFile {
  readonly repo: string;
  readonly path: string;
  readonly data: Buffer;
  readonly sha256: string;
  readonly lfs: boolean;
}

function gitBlobId(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export class LocalHub {
  readonly requests: HubRequest[] = [];
  readonly faults: HubFaults = { truncateOnce: new Set(), wrongChecksum: new Set(), stallAfter: new Map(), claimedSize: new Map(), slow: new Map() };
  private readonly repos = new Map<string, HubRepo>();
  private readonly blobs = new Map<string, StoredFile>();
  private readonly sockets = new Set<Socket>();
  url = '';
  storeUrl = '';

  private constructor(
    private readonly hub: Server,
    private readonly store: Server,
  ) {
    for (const server of [hub, store]) {
      server.on('connection', (socket) => {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
      });
    }
  }

  static async start(): Promise<LocalHub> {
    let self: LocalHub | undefined;
    const hub = createServer((req, res) => self!.handleHub(req, res));
    const store = createServer((req, res) => self!.handleStore(req, res));
    self = new LocalHub(hub, store);
    self.url = await listen(hub);
    self.storeUrl = await listen(store);
    return self;
  }

  addRepo(repo: string, content: HubRepo): void {
    this.repos.set(repo, content);
    for (const file of content.files) {
      const sha256 = createHash('sha256').update(file.data).digest('hex');
      const lfs = LFS_SUFFIXES.some((suffix) => file.path.endsWith(suffix));
      this.blobs.set(`${repo}/${file.path}`, { repo, path: file.path, data: file.data, sha256, lfs });
    }
  }

  requestsFor(path: string, server?: HubRequest['server']): HubRequest[] {
    return this.requests.filter((r) => r.path.includes(path) && (server === undefined || r.server === server));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([this.hub, this.store].map((server) => new Promise((resolve) => server.close(resolve))));
  }

  private log(server: HubRequest['server'], req: IncomingMessage, status: number): void {
    this.requests.push({
      server,
      method: req.method ?? '',
      path: decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname),
      ...(req.headers.range !== undefined && { range: req.headers.range }),
      ...(req.headers.authorization !== undefined && { authorization: req.headers.authorization }),
      status,
    });
  }

  private send(server: HubRequest['server'], req: IncomingMessage, res: ServerResponse, status: number, body?: unknown): void {
    this.log(server, req, status);
    if (body !== undefined) res.setHeader('content-type', 'application/json');
    res.writeHead(status).end(body === undefined || req.method === 'HEAD' ? undefined : JSON.stringify(body));
  }

  /** The repository and commit a request may see, or the refusal it gets. */
  private access(req: IncomingMessage, repoId: string, revision: string): { repo: HubRepo } | { status: number; error: string } {
    const repo = this.repos.get(repoId);
    if (repo === undefined) return { status: 401, error: 'Repository Not Found' };
    if (repo.token !== undefined) {
      const auth = req.headers.authorization;
      if (auth === undefined) return { status: 401, error: `Access to model ${repoId} is restricted. You must be authenticated.` };
      if (auth !== `Bearer ${repo.token}`) return { status: 403, error: `Access to model ${repoId} is restricted and you are not in the authorized list.` };
    }
    if (revision !== repo.commit && revision !== (repo.branch ?? 'main')) return { status: 404, error: `Revision Not Found` };
    return { repo };
  }

  private handleHub(req: IncomingMessage, res: ServerResponse): void {
    const parts = new URL(req.url ?? '/', 'http://x').pathname.split('/').map(decodeURIComponent);
    if (parts[1] === 'api' && parts[2] === 'models' && parts[5] === 'revision') {
      const repoId = `${parts[3]}/${parts[4]}`;
      const access = this.access(req, repoId, parts.slice(6).join('/'));
      if ('status' in access) return this.send('hub', req, res, access.status, { error: access.error });
      const siblings = access.repo.files.map((file) => ({ rfilename: file.path }));
      return this.send('hub', req, res, 200, { id: repoId, sha: access.repo.commit, siblings });
    }
    if (parts[3] !== 'resolve') return this.send('hub', req, res, 404, { error: 'no such endpoint' });
    const repoId = `${parts[1]}/${parts[2]}`;
    const access = this.access(req, repoId, parts[4] ?? '');
    if ('status' in access) return this.send('hub', req, res, access.status, { error: access.error });
    const key = `${repoId}/${parts.slice(5).join('/')}`;
    const file = this.blobs.get(key);
    if (file === undefined) {
      res.setHeader('x-error-code', 'EntryNotFound');
      return this.send('hub', req, res, 404, { error: 'Entry not found' });
    }
    res.setHeader('x-repo-commit', access.repo.commit);
    if (file.lfs) {
      const sha = this.faults.wrongChecksum.has(key) ? createHash('sha256').update('something else').digest('hex') : file.sha256;
      res.setHeader('x-linked-etag', `"${sha}"`);
      res.setHeader('x-linked-size', String(this.faults.claimedSize.get(key) ?? file.data.length));
      res.setHeader('etag', `"${sha}"`);
      res.setHeader('location', `${this.storeUrl}/blobs/${file.sha256}?key=${encodeURIComponent(key)}`);
      return this.send('hub', req, res, 302);
    }
    res.setHeader('etag', `"${gitBlobId(file.data)}"`);
    return this.transfer('hub', req, res, key, file);
  }

  private handleStore(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const key = url.searchParams.get('key') ?? '';
    const file = this.blobs.get(key);
    if (file === undefined || url.pathname !== `/blobs/${file.sha256}`) return this.send('store', req, res, 404, { error: 'no such blob' });
    res.setHeader('etag', `"${file.sha256}"`);
    return this.transfer('store', req, res, key, file);
  }

  /** The bytes, honouring a `Range: bytes=N-[M]` header, with the faults of this file applied. */
  private transfer(server: HubRequest['server'], req: IncomingMessage, res: ServerResponse, key: string, file: StoredFile): void {
    const size = file.data.length;
    res.setHeader('accept-ranges', 'bytes');
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (range !== null) {
      start = Number(range[1]);
      end = range[2] === '' ? size - 1 : Math.min(size - 1, Number(range[2]));
      if (start >= size || end < start) {
        res.setHeader('content-range', `bytes */${size}`);
        return this.send(server, req, res, 416);
      }
      status = 206;
      res.setHeader('content-range', `bytes ${start}-${end}/${size}`);
    }
    const body = file.data.subarray(start, end + 1);
    res.setHeader('content-length', String(body.length));
    this.log(server, req, status);
    res.writeHead(status);
    if (req.method === 'HEAD') return void res.end();
    const stall = this.faults.stallAfter.get(key);
    if (stall !== undefined) {
      res.write(body.subarray(0, Math.max(0, stall - start))); // and never more: the test stops the client
      return;
    }
    if (body.length > 1 && this.faults.truncateOnce.delete(key)) {
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
      return;
    }
    const pause = this.faults.slow.get(key);
    if (pause === undefined) return void res.end(body);
    const piece = 16 * 1024;
    const next = (offset: number): void => {
      if (offset >= body.length || res.destroyed) return void res.end();
      res.write(body.subarray(offset, offset + piece));
      setTimeout(() => next(offset + piece), pause);
    };
    next(0);
  }
}
