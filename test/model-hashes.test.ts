/**
 * generate checks the model's sha256, not only `models verify`: sizes at every load, contents on first use of each
 * file version, remembered in the tool's cache (src/model/file-hashes.ts). The real CLI on copies of the tiny model.
 */
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { assertBuilt, cli, expectOneLineError, ROOT } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { tempDir } from './helpers/model-folder.js';

const WEIGHTS = 'stdit/stdit3_block_0.data';
let root: string;
let counter = 0;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-hashes-');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A tiny-model copy, its own output folder and its own cache folder. */
async function setup(): Promise<{ model: string; out: string; cache: string }> {
  const base = join(root, `case-${counter++}`);
  const [model, out, cache] = ['model', 'out', 'cache'].map((name) => join(base, name)) as [string, string, string];
  await cp(join(ROOT, 'models', 'tiny'), model, { recursive: true });
  await mkdir(out, { recursive: true });
  return { model, out, cache };
}

/** Same size, other bytes: the size check at load cannot see it. */
async function corrupt(model: string): Promise<void> {
  const bytes = await readFile(join(model, WEIGHTS));
  bytes[0] = bytes[0]! ^ 0xff;
  await writeFile(join(model, WEIGHTS), bytes);
}

async function generate(model: string, out: string, cache: string, name: string) {
  const args = ['--log-level', 'debug', 'generate', 'a cat', '-o', join(out, name), '--model', model, '--steps', '1', '--resolution', '128x128'];
  return cli(args, { XDG_CACHE_HOME: cache });
}

/** The counts generate logs after its hash check. */
function hashLog(stderr: string): { hashed: number; known: number } {
  const line = stderr.split('\n').find((text) => text.includes('sha256 checked on first use'));
  if (line === undefined) throw new Error(`no hash log line in: ${stderr}`);
  const { hashed, known } = JSON.parse(line) as { hashed: number; known: number };
  return { hashed, known };
}

describe('generate checks sha256 on first use', () => {
  it('a weight file changed in place (same size): exit 5 naming the field and the file, nothing written', async () => {
    const { model, out, cache } = await setup();
    await corrupt(model);
    const result = await generate(model, out, cache, 'x.mp4');
    recordFaults({ badInputs: 1 });
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('error: '));
    expect(result.code, result.stderr).toBe(ERROR_EXIT_CODES.MODEL);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/manifest\.json: blocks\[\d+\]\.files\[1\]\.sha256: stdit\/stdit3_block_0\.data has sha256 [0-9a-f]{64}, the manifest says/);
    expect(await readdir(out)).toEqual([]);
  });

  it('the first run hashes every file and records it; the next hashes none; a file changed after that is caught', async () => {
    const { model, out, cache } = await setup();
    const first = await generate(model, out, cache, 'a.mp4');
    expect(first.code, first.stderr).toBe(0);
    const files = hashLog(first.stderr);
    expect(files.hashed).toBeGreaterThan(30);
    expect(files.known).toBe(0);

    const second = await generate(model, out, cache, 'b.mp4');
    expect(second.code, second.stderr).toBe(0);
    expect(hashLog(second.stderr)).toEqual({ hashed: 0, known: files.hashed });

    await corrupt(model);
    recordFaults({ faultsInjected: 1 });
    const third = await cli(['generate', 'a cat', '-o', join(out, 'c.mp4'), '--model', model], { XDG_CACHE_HOME: cache });
    expectOneLineError(third, ERROR_EXIT_CODES.MODEL, `${WEIGHTS} has sha256`);
  });

  it('outputs come first: a bad -o beside a changed weight file reports the output, and nothing is hashed or recorded', async () => {
    // generate reads the manifest and looks up the hash cache while it checks its outputs (start-up time); hashing,
    // and writing the cache, wait until the outputs are proven writable.
    const { model, out, cache } = await setup();
    await corrupt(model);
    const result = await cli(
      ['generate', 'a cat', '-o', join(out, 'missing', 'a.mp4'), '--model', model, '--steps', '1', '--resolution', '128x128'],
      { XDG_CACHE_HOME: cache },
    );
    expectOneLineError(result, ERROR_EXIT_CODES.IO, 'missing does not exist');
    expect(await readdir(cache).catch(() => [])).toEqual([]);
    expect(await readdir(out)).toEqual([]);
  });

  it('models verify records what it hashed: the generate after it hashes nothing', async () => {
    const { model, out, cache } = await setup();
    const verify = await cli(['models', 'verify', model], { XDG_CACHE_HOME: cache });
    expect(verify.code, verify.stderr).toBe(0);
    const run = await generate(model, out, cache, 'a.mp4');
    expect(run.code, run.stderr).toBe(0);
    expect(hashLog(run.stderr).hashed).toBe(0);
  });
});
