/**
 * The iPhone app's runner core (ios/runner-core, C++17) against this tool's RemoteBackend over real TCP: built here
 * with the fake executor (CoreML cannot run on Linux; the fake computes x + 1 and x / 2 in C++), started as a
 * process, reached as the host reaches the phone's loopback. Skipped, with the reason, without a C++ compiler.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isResident, type Tensor } from '../src/runtime/backend.js';
import type { RemoteBackend } from '../src/runtime/remote-backend.js';
import { connectRemoteBackend } from '../src/runtime/runner-address.js';
import { fromNumbers, toFloat32 } from '../src/runtime/tensor.js';
import { ROOT } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';

const SOURCES = ['fake_runner_main.cc', 'loopback_server.cc', 'runner.cc', 'json.cc', 'frame.cc'].map((file) =>
  join(ROOT, 'ios', 'runner-core', file),
);

let dir: string;
let built: string | undefined;
let skipReason = '';
let runner: ChildProcess | undefined;
let port = 0;

beforeAll(async () => {
  dir = await tempDir('sora-runner-core-');
  const binary = join(dir, 'fake_runner');
  const compile = spawnSync(process.env.CXX ?? 'c++', ['-std=c++17', '-O1', '-pthread', '-o', binary, ...SOURCES], { encoding: 'utf8' });
  if (compile.error !== undefined) {
    skipReason = `no C++ compiler: ${compile.error.message}`;
    return;
  }
  expect(compile.status, compile.stderr).toBe(0);
  built = binary;
  runner = spawn(binary, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(runner.stdout!, 'data')) as [Buffer];
  port = Number(/listening 127\.0\.0\.1:(\d+)/.exec(line.toString())?.[1]);
  expect(port).toBeGreaterThan(0);
}, 120_000);

afterAll(async () => {
  if (runner !== undefined && runner.exitCode === null) {
    runner.stdin!.end();
    await once(runner, 'exit');
  }
  await rm(dir, { recursive: true, force: true });
});

function open(): Promise<RemoteBackend> {
  return connectRemoteBackend({ target: { kind: 'tcp', host: '127.0.0.1', port } });
}

const floats = (values: number[]): Tensor => fromNumbers('float32', [values.length], values);

describe('the iPhone runner core (C++) serves the TypeScript RemoteBackend', () => {
  it('hello, load, run with a kept output, a chained run on the handle, fetch', async (context) => {
    if (built === undefined) context.skip(skipReason);
    const backend = await open();
    try {
      expect(backend.runner.runner).toBe('sora-runner-core fake');
      const block = await backend.load({ name: 'add_one', path: '/in/the/app', weightBytes: 0 });
      const first = await backend.run(block, { x: floats([1, 2, 3]) }, { keep: ['y'] });
      const y = first.y!;
      if (!isResident(y)) throw new Error('y came back to the host instead of staying on the runner');
      const second = await backend.run(block, { x: y });
      expect(Array.from(toFloat32(second.y as Tensor))).toEqual([3, 4, 5]);
      expect(Array.from(toFloat32(await backend.fetch(y)))).toEqual([2, 3, 4]);
      await backend.release([y]);
      await backend.unload(block);
    } finally {
      await backend.close();
    }
  });

  it('a run the executor fails is one error; the runner serves the next client, blocks kept loaded', async (context) => {
    if (built === undefined) context.skip(skipReason);
    const backend = await open();
    try {
      const block = await backend.load({ name: 'halves', path: '/in/the/app', weightBytes: 0 });
      await expect(backend.run(block, { x: floats([-1, 4]) })).rejects.toThrow(/asked to fail/);
      const out = await backend.run(block, { x: floats([2, 4]) });
      expect(Array.from(toFloat32(out.a as Tensor))).toEqual([1, 2]);
      await expect(backend.load({ name: 'nope', path: '/x', weightBytes: 0 })).rejects.toThrow(/no block named nope/);
    } finally {
      await backend.close();
    }
    const next = await open();
    try {
      const stats = await next.runnerStats();
      expect(stats.blocks.idle).toContain('halves');
      expect(stats.heldByAll).toEqual({ count: 0, bytes: 0 });
    } finally {
      await next.close();
    }
  });

  it('listens on loopback only', async (context) => {
    if (built === undefined) context.skip(skipReason);
    const outside = Object.values(networkInterfaces())
      .flat()
      .find((address) => address !== undefined && address.family === 'IPv4' && !address.internal);
    if (outside === undefined) context.skip('this machine has no non-loopback IPv4 address to try');
    const socket = connect({ host: outside!.address, port });
    const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNREFUSED');
  });
});
