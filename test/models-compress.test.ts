import { cp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frameDifference, readPngFrames } from '../scripts/frame-difference.js';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { assertBuilt, cli, expectOneLineError, ROOT } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';

// The real thing: the built CLI runs scripts/compress_model.py (Debian's python3-onnx) on the shipped tiny model,
// then generates with real ONNX Runtime from the original and the compressed folders.
const TINY = join(ROOT, 'models', 'tiny');
const PYTHON_ENV = { ONDEVICE_SORA_PYTHON: '/usr/bin/python3' };
const PROMPT = 'a red ball bouncing';
const SMALL = ['--resolution', '128x128', '--steps', '8', '--seed', '7'];

interface ManifestFile {
  readonly path: string;
  readonly bytes: number;
  readonly role?: string;
}
interface ManifestBlock {
  readonly name: string;
  readonly dtype: string;
  readonly files: readonly ManifestFile[];
  readonly inputs: unknown;
  readonly outputs: unknown;
}
interface Manifest {
  readonly blocks: readonly ManifestBlock[];
}

let dir: string;

beforeAll(async () => {
  assertBuilt();
  dir = await tempDir('sora-compress-');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function manifestOf(folder: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(folder, 'manifest.json'), 'utf8')) as Manifest;
}

/** Bytes of the weight files, each once (a block pair's ST and TDTM graphs share one). */
function weightFileBytes(manifest: Manifest): number {
  const files = manifest.blocks.flatMap((block) => block.files).filter((file) => file.role === 'weights');
  return [...new Map(files.map((file) => [file.path, file.bytes])).values()].reduce((sum, bytes) => sum + bytes, 0);
}

async function compress(setting: string, output: string, source = TINY): Promise<ReturnType<typeof cli>> {
  return cli(['models', 'compress', source, '--weights', setting, '-o', output], PYTHON_ENV);
}

async function framesOf(model: string, name: string): Promise<Buffer[]> {
  const folder = join(dir, name);
  const result = await cli(['generate', PROMPT, '--model', model, '-o', folder, '--format', 'frames', ...SMALL]);
  expect(result.code, result.stderr).toBe(0);
  return readPngFrames(folder);
}

describe('models compress on the shipped tiny model', () => {
  const folders: Record<string, string> = {};

  beforeAll(async () => {
    for (const setting of ['fp16', 'int8']) {
      folders[setting] = join(dir, `tiny-${setting}`);
      const result = await compress(setting, folders[setting]!);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^wrote .*tiny-(fp16|int8): 32 blocks, weights (float16|int8), /);
    }
  }, 300_000);

  it('stores weights as float16 (~2x fewer bytes) and int8 (~4x), with the same blocks, inputs and outputs', async () => {
    const original = await manifestOf(TINY);
    const half = await manifestOf(folders.fp16!);
    const int8 = await manifestOf(folders.int8!);
    for (const [manifest, dtype] of [[half, 'float16'], [int8, 'int8']] as const) {
      expect(manifest.blocks.map((b) => [b.name, b.inputs, b.outputs])).toEqual(original.blocks.map((b) => [b.name, b.inputs, b.outputs]));
      expect(new Set(manifest.blocks.map((b) => b.dtype))).toEqual(new Set([dtype]));
    }
    // Measured on the tiny model: 0.52 and 0.29 (its small tensors each start on a 4 KiB page).
    expect(weightFileBytes(half) / weightFileBytes(original)).toBeLessThan(0.55);
    expect(weightFileBytes(int8) / weightFileBytes(original)).toBeLessThan(0.3);
  });

  it('writes folders that models verify accepts: every sha256 matches and every block runs in ONNX Runtime', async () => {
    for (const folder of Object.values(folders)) {
      const result = await cli(['models', 'verify', folder]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain('32 blocks open in ONNX Runtime');
    }
  }, 300_000);

  it('generates from the compressed folders with frames close to float32 (fp16 within 1-2 levels, int8 PSNR > 35 dB)', async () => {
    const reference = await framesOf(TINY, 'fp32');
    const half = frameDifference(reference, await framesOf(folders.fp16!, 'fp16'));
    const int8 = frameDifference(reference, await framesOf(folders.int8!, 'int8'));
    // Measured: fp16 max 1, PSNR 62 dB; int8 max 23, PSNR 43 dB (random weights amplify errors more than trained ones).
    expect(half.maxAbs).toBeLessThanOrEqual(4);
    expect(half.psnr).toBeGreaterThan(50);
    expect(int8.psnr).toBeGreaterThan(35);
    expect(int8.psnr).toBeLessThan(half.psnr);
  }, 300_000);
});

describe('models compress refuses what it cannot do, with one line and nothing written', () => {
  it('never replaces an existing folder', async () => {
    const output = join(dir, 'taken');
    await cp(join(TINY, 'tokenizer_config.json'), join(output, 'keep.json'), { recursive: true });
    const result = await compress('int8', output);
    expectOneLineError(result, ERROR_EXIT_CODES.IO, 'already exists');
    expect(await readdir(output)).toEqual(['keep.json']);
  });

  it('names an unknown --weights setting', async () => {
    const result = await compress('int4', join(dir, 'int4'));
    expectOneLineError(result, ERROR_EXIT_CODES.USAGE, '--weights', 'fp16, float16, int8');
  });

  it('refuses a folder whose weights are already compressed', async () => {
    const first = join(dir, 'once');
    expect((await compress('fp16', first)).code).toBe(0);
    const result = await compress('int8', join(dir, 'twice'), first);
    expectOneLineError(result, ERROR_EXIT_CODES.INPUT, 'already stored as float16');
    expect((await readdir(dir)).filter((name) => name.includes('twice'))).toEqual([]);
  }, 120_000);

  it('leaves no output and no temporary when a graph cannot be read (the compressor fails part-way)', async () => {
    const broken = join(dir, 'broken');
    await cp(TINY, broken, { recursive: true });
    const graph = join(broken, 'stdit', 'stdit3_block_1.onnx');
    await writeFile(graph, Buffer.alloc((await stat(graph)).size, 0xff)); // same size: the loader's checks pass
    const result = await compress('int8', join(dir, 'from-broken'), broken);
    expectOneLineError(result, ERROR_EXIT_CODES.INPUT, 'stdit3_block_1.onnx: cannot read the ONNX graph');
    expect((await readdir(dir)).filter((name) => name.includes('from-broken'))).toEqual([]);
  }, 120_000);
});
