/**
 * Faults around the runner, as users' systems see them: real `serve` and `generate` processes, signals, raw bytes
 * on the socket. Each test asserts its own outcome; the fault ledger only counts.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import type { RemoteBackend } from '../src/runtime/remote-backend.js';
import { connectRemoteBackend, parseConnect, type RunnerTarget } from '../src/runtime/runner-address.js';
import { FrameReader, frameBytes, type Frame, type FrameProblem } from '../src/runtime/runner-frames.js';
import { fromNumbers } from '../src/runtime/tensor.js';
import { assertBuilt, cli, expectOneLineError, ROOT, TEST_MODEL_ENV } from './helpers/cli.js';
import { expectSoraError } from './helpers/expect-error.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { tempDir } from './helpers/model-folder.js';
import { processRss, rawConnection, startServe, type ServeProcess } from './helpers/runner.js';

let dir: string;
const runners: ServeProcess[] = [];
const backends: RemoteBackend[] = [];

beforeAll(async () => {
  assertBuilt();
  dir = await tempDir('sora-runner-faults-');
});

afterEach(async () => {
  await Promise.all(backends.splice(0).map((backend) => backend.close()));
  await Promise.all(runners.splice(0).map((runner) => runner.stop('SIGKILL')));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function serve(...flags: string[]): Promise<ServeProcess> {
  const runner = await startServe(['--log-level', 'info', ...flags]);
  runners.push(runner);
  return runner;
}

async function client(address: string, token?: string): Promise<RemoteBackend> {
  const backend = await connectRemoteBackend({ target: parseConnect(address) as RunnerTarget, ...(token && { token }) });
  backends.push(backend);
  return backend;
}

/** A generate child on the runner, long enough to be interrupted mid-denoising. */
function longGenerate(address: string, output: string) {
  const args = ['generate', 'a red ball', '-o', output, '--seed', '1', '--connect', address, '--quiet', '--resolution', '256x256', '--steps', '30'];
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'ondevice-sora'), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', ...TEST_MODEL_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, exited, stderr: () => stderr };
}

/** Waits until the runner has served `runs` block runs to its client (its debug log is off: counts stderr lines). */
async function untilDenoising(runner: ServeProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!runner.stderr().includes('client connected')) {
    if (Date.now() > deadline) throw new Error(`no client connected: ${runner.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 1500)); // the text encoder takes well under this
}

/** Frames and problems the runner sends back on a raw connection, gathered until `count` have come. */
async function replies(socket: Socket, count: number): Promise<(Frame | FrameProblem)[]> {
  const reader = new FrameReader({ maxHeaderBytes: 1 << 20, maxFrameBytes: 1 << 30 });
  const got: (Frame | FrameProblem)[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${count} replies`)), 30_000);
    const done = (): void => {
      clearTimeout(timer);
      resolve(got);
    };
    socket.on('data', (chunk: Buffer) => {
      for (const event of reader.push(chunk)) got.push('frame' in event ? event.frame : event.problem);
      if (got.length >= count) done();
    });
    socket.on('close', done);
  });
}

const hello = (id = 0, extra: Record<string, unknown> = {}) => frameBytes({ type: 'hello', id, versions: [1], ...extra });

describe('the runner killed mid-generation', () => {
  it('generate exits with the backend code and one line, writes nothing, and does not hang', async () => {
    const runner = await serve();
    const output = join(dir, 'killed-runner.mp4');
    const generation = longGenerate(runner.address, output);
    await untilDenoising(runner);
    runner.child.kill('SIGKILL');
    const started = Date.now();
    const code = await generation.exited;
    recordFaults({ faultsInjected: 1 });
    expect(Date.now() - started).toBeLessThan(15_000);
    expectOneLineError({ code: code ?? -1, stdout: '', stderr: generation.stderr() }, ERROR_EXIT_CODES.BACKEND, `runner at ${runner.address} closed the connection during run of`);
    const left = (await readdir(dir)).filter((name) => name.includes('killed-runner'));
    recordFaults({ filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });

  it('the host lets go of everything it held for the runner: requests waiting fail at once, no partial reply kept', async () => {
    const runner = await serve();
    const backend = await client(runner.address);
    const handle = await backend.load({ name: 'stdit3_part1', path: '/on/the/runner', weightBytes: 0 });
    // A large put that the runner dies while receiving: a partial frame on the way in, a request waiting.
    const upload = backend.upload(fromNumbers('float32', [4, 1024, 1024], new Float32Array(4 << 20)));
    runner.child.kill('SIGKILL');
    recordFaults({ faultsInjected: 1 });
    await expectSoraError(upload, 'BACKEND', `runner at ${runner.address}`);
    expect(backend.pending()).toEqual({ requests: 0, bufferedBytes: 0 });
    await expectSoraError(backend.run(handle, {}), 'BACKEND', `runner at ${runner.address}`);
    await backend.release([{ resident: 1, dtype: 'float32', dims: [1] }]); // nothing to do, no error
  });
});

describe('a client killed mid-run', () => {
  it('the runner frees what the client held, keeps its blocks loaded, and serves the next client', async () => {
    const runner = await serve();
    const generation = longGenerate(runner.address, join(dir, 'killed-client.mp4'));
    await untilDenoising(runner);
    generation.child.kill('SIGKILL');
    await generation.exited;
    recordFaults({ faultsInjected: 1 });
    const next = await client(runner.address);
    const stats = await next.runnerStats();
    expect(stats.heldByAll).toEqual({ count: 0, bytes: 0 });
    expect(stats.blocks.idle.some((name) => name.startsWith('stdit3_'))).toBe(true);
    expect(runner.stderr()).toMatch(/client gone/);
    await next.close();
    const result = await cli(['generate', 'a red ball', '-o', join(dir, 'after.mp4'), '--connect', runner.address, '--quiet', '--steps', '2', '--resolution', '128x128']);
    expect(result.code, result.stderr).toBe(0);
  });
});

describe('bad frames and requests', () => {
  it('a frame that does not start with OSRP: an error reply, the connection ends, the runner serves the next', async () => {
    const runner = await serve();
    const socket = await rawConnection(runner.address);
    const answer = replies(socket, 1);
    socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const [reply] = await answer;
    recordFaults({ badInputs: 1 });
    expect(reply).toMatchObject({ header: { type: 'error', id: null, code: 'bad-frame' } });
    await once(socket, 'close');
    await client(runner.address); // still up
  });

  it('an oversized frame is refused as it arrives, its bytes are not kept, and the connection goes on', async () => {
    const runner = await serve('--max-frame', '1M');
    const socket = await rawConnection(runner.address);
    const frames = 40;
    const answers = replies(socket, 2 + frames);
    socket.write(hello(0));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = await processRss(runner.child.pid!);
    const big = frameBytes({ type: 'put', id: 1 }, [fromNumbers('float32', [2 << 20], new Float32Array(2 << 20))]); // 8 MiB
    for (let i = 0; i < frames; i++) socket.write(big);
    socket.write(frameBytes({ type: 'stats', id: 2 }));
    const got = await answers;
    recordFaults({ badInputs: frames });
    const after = await processRss(runner.child.pid!);
    const errors = got.filter((reply) => 'header' in reply && reply.header.type === 'error');
    expect(errors).toHaveLength(frames);
    expect(errors[0]).toMatchObject({ header: { id: 1, code: 'frame-too-large' } });
    expect(got.at(-1)).toMatchObject({ header: { type: 'stats', id: 2 } });
    // 320 MiB went past; the runner kept none of it (what remains is socket buffers V8 has not collected yet).
    expect(after - before).toBeLessThan(64 * 2 ** 20);
    socket.destroy();
  });

  it('unknown messages, missing handles, wrong dtypes and sizes: error replies, and the session goes on', async () => {
    const runner = await serve();
    const socket = await rawConnection(runner.address);
    const answers = replies(socket, 8);
    socket.write(hello(0));
    socket.write(frameBytes({ type: 'stats', id: 1, extra: 'ignored' }));
    socket.write(frameBytes({ type: 'teleport', id: 2 }));
    socket.write(frameBytes({ type: 'fetch', id: 3, handles: [999] }));
    socket.write(frameBytes({ type: 'run', id: 4, block: 7, inputs: {} }));
    // float64 is not a protocol dtype; a payload shorter than the dims say.
    const header = (dtype: string, dims: number[]) => JSON.stringify({ type: 'put', id: 5, tensors: [{ dtype, dims }] });
    socket.write(rawFrame(header('float64', [2]), 16));
    socket.write(rawFrame(JSON.stringify({ type: 'put', id: 6, tensors: [{ dtype: 'float32', dims: [4] }] }), 8));
    socket.write(frameBytes({ type: 'load', id: 7, name: 'no_such_block' }));
    const got = (await answers) as Frame[];
    recordFaults({ badInputs: 6 });
    const byId = new Map(got.map((frame) => [frame.header.id, frame.header]));
    expect(byId.get(1)).toMatchObject({ type: 'stats', held: { count: 0, bytes: 0 } });
    expect(byId.get(2)).toMatchObject({ type: 'error', code: 'unknown-message' });
    expect(byId.get(3)).toMatchObject({ type: 'error', code: 'no-such-handle' });
    expect(byId.get(4)).toMatchObject({ type: 'error', code: 'no-such-handle' });
    expect(byId.get(5)).toMatchObject({ type: 'error', code: 'bad-tensor' });
    expect(byId.get(6)).toMatchObject({ type: 'error', code: 'bad-tensor' });
    expect(byId.get(7)).toMatchObject({ type: 'error', code: 'no-such-block' });
    socket.destroy();
  });
});

describe('who may use the runner', () => {
  it('a wrong or missing token: one line, the flag’s exit code; the right one works', async () => {
    const runner = await serve('--token', 's3cret');
    const args = ['generate', 'a red ball', '-o', join(dir, 'token.mp4'), '--connect', runner.address, '--quiet', '--steps', '1', '--resolution', '128x128'];
    expectOneLineError(await cli([...args, '--token', 'wrong']), ERROR_EXIT_CODES.USAGE, 'wrong token');
    expectOneLineError(await cli(args), ERROR_EXIT_CODES.USAGE, 'requires a token');
    recordFaults({ badInputs: 2 });
    const ok = await cli(args, { ONDEVICE_SORA_TOKEN: 's3cret' });
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('refuses to listen beyond loopback without a token', async () => {
    const result = await cli(['serve', '--listen', '0.0.0.0:0']);
    recordFaults({ badInputs: 1 });
    expectOneLineError(result, ERROR_EXIT_CODES.USAGE, 'not a loopback address', '--token');
  });

  it('a second client is refused with busy while the first is served', async () => {
    const runner = await serve();
    await client(runner.address);
    const result = await cli(['generate', 'x', '-o', join(dir, 'second.mp4'), '--connect', runner.address, '--quiet', '--steps', '1']);
    recordFaults({ concurrentRuns: 1 });
    expectOneLineError(result, ERROR_EXIT_CODES.BACKEND, 'serving another client', '(busy)');
  });
});

describe('Ctrl-C on the runner', () => {
  it('finishes the request under way, then exits 130; the client gets one line', async () => {
    const runner = await serve();
    const generation = longGenerate(runner.address, join(dir, 'ctrl-c.mp4'));
    await untilDenoising(runner);
    runner.child.kill('SIGINT');
    recordFaults({ faultsInjected: 1 });
    expect(await runner.exited).toBe(ERROR_EXIT_CODES.INTERRUPTED);
    expect(runner.stderr()).toContain('stopping: finishing the requests under way');
    const code = await generation.exited;
    expectOneLineError({ code: code ?? -1, stdout: '', stderr: generation.stderr() }, ERROR_EXIT_CODES.BACKEND, `runner at ${runner.address}`);
  });
});

/** A frame with this exact header text and `payload` zero bytes, whatever they claim. */
function rawFrame(header: string, payload: number): Buffer {
  const json = Buffer.from(header);
  const prefix = Buffer.alloc(16);
  prefix.write('OSRP', 0, 'latin1');
  prefix.writeUInt32LE(json.byteLength, 4);
  prefix.writeBigUInt64LE(BigInt(payload), 8);
  return Buffer.concat([prefix, json, Buffer.alloc(payload)]);
}
