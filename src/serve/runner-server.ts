/**
 * The block runner (`serve`): the protocol of docs/runner-protocol.md over a TCP port, a Unix socket or stdio, on
 * the local backend (ONNX Runtime here, CoreML on a Mac). One client at a time: a second one is refused with `busy`
 * at its hello, rather than left waiting behind a job of unknown length; a client whose connection is going is waited
 * for (its requests under way finish, its tensors are freed) before the next is admitted. Blocks stay loaded from one
 * client to the next (loaded-blocks.ts).
 */
import { chmod, lstat, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { cpus, hostname, release } from 'node:os';
import type { Duplex } from 'node:stream';
import { displayPath } from '../display-path.js';
import { SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Model } from '../model/manifest.js';
import type { Backend } from '../runtime/backend.js';
import type { MemoryMeter } from '../runtime/memory-meter.js';
import type { RunnerLimits } from '../runtime/runner-messages.js';
import { VERSION } from '../version.js';
import { LoadedBlocks } from './loaded-blocks.js';
import { RunnerSession, type RunnerContext } from './runner-session.js';

import { DEFAULT_LIMITS } from './runner-limits.js';

export { DEFAULT_LIMITS };

export interface RunnerServerOptions {
  readonly backend: Backend;
  /** The folder whose blocks clients load by name; null serves none (every load fails with no-such-block). */
  readonly model: Model | null;
  readonly meter: MemoryMeter;
  readonly token?: string;
  readonly limits?: RunnerLimits;
  readonly logger: Logger;
}

const OS_NAMES: Readonly<Partial<Record<NodeJS.Platform, string>>> = { linux: 'Linux', darwin: 'macOS', win32: 'Windows' };

export class RunnerServer {
  readonly #context: RunnerContext;
  readonly #sessions = new Set<RunnerSession>();
  readonly #servers: Server[] = [];
  readonly #socketFiles: string[] = [];
  #active: RunnerSession | null = null;
  #shuttingDown = false;

  constructor(options: RunnerServerOptions) {
    const { backend, model, meter, logger } = options;
    const server = this;
    this.#context = {
      backend,
      blocks: new LoadedBlocks(backend, model, meter, logger),
      meter,
      limits: options.limits ?? DEFAULT_LIMITS,
      token: options.token,
      logger,
      identity: {
        runner: `ondevice-sora serve ${VERSION}`,
        device: {
          name: hostname(),
          model: cpus()[0]?.model.trim() ?? 'unknown',
          os: OS_NAMES[process.platform] ?? process.platform,
          osVersion: release(),
          arch: process.arch,
        },
        backend: `${backend.kind} ${backend.device}`,
        model: model === null ? null : { name: model.name, architecture: { ...model.architecture } },
      },
      admit: (session) => server.#admit(session),
      leave: (session) => server.#leave(session),
      heldByAll: () => {
        let count = 0;
        let bytes = 0;
        for (const session of server.#sessions) {
          const held = session.held();
          count += held.count;
          bytes += held.bytes;
        }
        return { count, bytes };
      },
      get shuttingDown() {
        return server.#shuttingDown;
      },
    };
  }

  /** Listens on a TCP address; resolves with the bound address (port 0: a free one). */
  async listenTcp(host: string, port: number): Promise<AddressInfo> {
    const server = this.#server();
    await listening(server, () => server.listen({ host, port, exclusive: true }));
    return server.address() as AddressInfo;
  }

  /** Listens on a Unix socket only this user can open; refuses a path that exists. It is removed at shutdown. */
  async listenUnix(path: string): Promise<void> {
    const taken = await lstat(path).then(
      () => true,
      () => false,
    );
    if (taken) throw new SoraError('IO', `--socket: ${displayPath(path)} already exists; remove it or choose another path`);
    const server = this.#server();
    // The mode is set before any client can connect: the umask covers the moment between bind and chmod.
    const umask = process.umask(0o177);
    try {
      await listening(server, () => server.listen(path));
    } finally {
      process.umask(umask);
    }
    this.#socketFiles.push(path);
    await chmod(path, 0o600);
  }

  /** One client on a byte stream (stdio); resolves when it has gone. */
  serveStream(stream: Duplex, label: string): Promise<void> {
    return this.#session(stream, label).ended;
  }

  /** Stops listening, lets every request under way finish, then closes the connections and the backend. */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    await Promise.all(this.#servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await Promise.all([...this.#sessions].map((session) => session.drain()));
    await Promise.all(this.#socketFiles.map((path) => rm(path, { force: true })));
    await this.#context.backend.close();
  }

  #server(): Server {
    const server = createServer((socket: Socket) => {
      socket.setNoDelay(true);
      const label = socket.remoteAddress === undefined ? 'unix socket' : `${socket.remoteAddress}:${socket.remotePort}`;
      this.#session(socket, label);
    });
    this.#servers.push(server);
    return server;
  }

  #session(stream: Duplex, label: string): RunnerSession {
    const session = new RunnerSession(this.#context, stream, label);
    this.#sessions.add(session);
    return session;
  }

  async #admit(session: RunnerSession): Promise<boolean> {
    const current = this.#active;
    if (current !== null && current !== session) {
      if (!current.closing) return false;
      await current.ended;
    }
    if (this.#active !== null && this.#active !== session) return false;
    this.#active = session;
    return true;
  }

  #leave(session: RunnerSession): void {
    this.#sessions.delete(session);
    if (this.#active === session) this.#active = null;
  }
}

function listening(server: Server, listen: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(new SoraError('IO', `cannot listen: ${error.code === 'EADDRINUSE' ? 'the address is in use' : error.message}`, { cause: error }));
    });
    server.once('listening', () => resolve());
    listen();
  });
}
