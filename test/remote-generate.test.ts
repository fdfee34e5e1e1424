/**
 * `generate --connect` against a real `serve` on loopback (both the built CLI, real processes, the tiny model):
 * the frames are those of the local backend bit for bit, and what crosses per step is the latent in and part2's
 * output back, never a block's activation.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TransferCounts } from '../src/runtime/backend.js';
import { connectRemoteBackend, parseConnect, type RunnerTarget } from '../src/runtime/runner-address.js';
import { assertBuilt, cli } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';
import { startServe, type ServeProcess } from './helpers/runner.js';

let dir: string;
let runner: ServeProcess;
let count = 0;

beforeAll(async () => {
  assertBuilt();
  dir = await tempDir('sora-remote-');
  runner = await startServe();
});

afterAll(async () => {
  await runner?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Sidecar {
  readonly backend: { readonly kind: string; readonly device: string };
  readonly sampler: { readonly evaluations: number };
  readonly transfers: { readonly stdit: TransferCounts & { readonly perStep: TransferCounts } };
}

interface Run {
  readonly frames: Buffer[];
  readonly sidecar: Sidecar;
}

const SMALL = ['--resolution', '128x128', '--num-frames', '17', '--seed', '5'];

async function generate(...flags: string[]): Promise<Run> {
  const out = join(dir, `run-${count++}`);
  const result = await cli(['generate', 'a red ball bouncing', '-o', out, '--format', 'frames', '--quiet', ...SMALL, ...flags]);
  expect(result.code, result.stderr).toBe(0);
  const files = (await readdir(out)).sort();
  return {
    frames: await Promise.all(files.map((file) => readFile(join(out, file)))),
    sidecar: JSON.parse(await readFile(`${out}.json`, 'utf8')) as Sidecar,
  };
}

describe('generate --backend remote --connect against serve on loopback', () => {
  const settings: [string, string[]][] = [
    ['baseline', []],
    ['baseline, --memory-budget 4G', ['--memory-budget', '4G']],
    ['paper (LPL, TDTM, CI-DL with the default budget)', ['--preset', 'paper']],
    ['paper, --memory-budget 3G', ['--preset', 'paper', '--memory-budget', '3G']],
    // The step cache sends block 0 its input from the host and takes the stack's output back with the last block.
    ['fast (LPL and the step cache)', ['--preset', 'fast']],
  ];
  for (const [name, flags] of settings) {
    it(`${name}: frames bit-identical to the local backend`, async () => {
      const local = await generate(...flags);
      const remote = await generate(...flags, '--backend', 'remote', '--connect', runner.address);
      expect(remote.sidecar.backend.kind).toBe('remote');
      expect(remote.sidecar.backend.device).toContain(`runner at ${runner.address}`);
      expect(remote.frames.length).toBe(17);
      expect(remote.frames).toEqual(local.frames);
    });
  }

  it('moves per step the latent batch and the timestep in, part2’s output back: less than one block activation', async () => {
    // Latent of 128x128, 17 frames: 4 channels x 5 frames x 16 x 16; the CFG batch doubles it.
    const latent = 4 * 5 * 16 * 16;
    const zIn = 2 * latent * 4;
    const part2Out = 2 * 2 * latent * 4; // 8 channels: velocity and the unused sigma
    const activation = 2 * 5 * 8 * 8 * 64 * 4; // x of a block: [2, T·(H/2)·(W/2), hidden 64]
    for (const backend of [[], ['--connect', runner.address]]) {
      const short = await generate('--steps', '4', ...backend);
      const long = await generate('--steps', '8', ...backend);
      for (const run of [short, long]) expect(run.sidecar.transfers.stdit.perStep.toHost).toBe(part2Out);
      // The constant part (captions, masks, sizes) is sent once per generation, whatever the step count.
      expect(long.sidecar.transfers.stdit.toRuntime - short.sidecar.transfers.stdit.toRuntime).toBe(4 * (zIn + 2 * 4));
      const perStep = long.sidecar.transfers.stdit.perStep;
      expect(perStep.toRuntime + perStep.toHost).toBeLessThan(activation);
    }
  });

  it('keeps blocks loaded from one client’s job to the next (batch, then another client)', async () => {
    const prompts = join(dir, 'prompts.txt');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(prompts, 'a red ball\na blue cube\n');
    const result = await cli(['batch', prompts, '-o', join(dir, 'batch'), '--connect', runner.address, '--quiet', ...SMALL, '--steps', '2']);
    expect(result.code, result.stderr).toBe(0);
    const target = parseConnect(runner.address) as RunnerTarget;
    const backend = await connectRemoteBackend({ target });
    try {
      const stats = await backend.runnerStats();
      expect(stats.blocks.idle).toContain('stdit3_ST_0');
      expect(stats.heldByAll).toEqual({ count: 0, bytes: 0 });
      await backend.load({ name: 'stdit3_ST_0', path: '/on/the/runner', weightBytes: 0 });
      expect(backend.stats()[0]).toMatchObject({ name: 'stdit3_ST_0', cached: true });
    } finally {
      await backend.close();
    }
  });
});
