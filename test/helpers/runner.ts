/** Starts the built CLI's `serve` as a real child process and tells where it listens. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { ROOT, TEST_MODEL_ENV } from './cli.js';

export interface ServeProcess {
  readonly child: ChildProcess;
  /** What --connect takes: 127.0.0.1:PORT or unix:PATH. */
  readonly address: string;
  /** Everything the runner wrote on stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

const BIN = join(ROOT, 'bin', 'ondevice-sora');

/** `serve` with these flags (default: --listen 127.0.0.1:0 on the tiny model); resolves once it listens. */
export async function startServe(flags: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ServeProcess> {
  const where = flags.some((flag) => flag === '--socket' || flag === '--listen' || flag === '--stdio') ? [] : ['--listen', '127.0.0.1:0'];
  const child = spawn(process.execPath, [BIN, 'serve', '--model', join(ROOT, 'models', 'tiny'), ...where, ...flags], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', ...TEST_MODEL_ENV, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => (code === null ? String(signal) : Number(code)));
  const address = await new Promise<string>((resolve, reject) => {
    const check = (): void => {
      const match = / on (unix:\S+|127\.0\.0\.1:\d+|\[::1\]:\d+)[;,]/.exec(stderr);
      if (match !== null) resolve(match[1]!);
    };
    child.stderr!.on('data', check);
    void exited.then((code) => reject(new Error(`serve exited (${code}) before listening: ${stderr}`)));
  });
  return {
    child,
    address,
    stderr: () => stderr,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A raw connection to a runner at 127.0.0.1:PORT or unix:PATH. */
export async function rawConnection(address: string): Promise<Socket> {
  const socket = address.startsWith('unix:')
    ? connect(address.slice('unix:'.length))
    : connect({ host: '127.0.0.1', port: Number(address.split(':').at(-1)) });
  await once(socket, 'connect');
  return socket;
}

/** The VmRSS of a process, from /proc (Linux), in bytes. */
export async function processRss(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}
