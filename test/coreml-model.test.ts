/**
 * models/tiny-coreml: models/tiny converted to CoreML packages (scripts/make_tiny_model.py --format coreml), listed in
 * manifest.json like any model. On Linux the packages cannot run; these tests load, inspect and verify the folder
 * with the built CLI (package digests, contract names, per-block compute units) and check that broken copies fail
 * with one line. The packages' own specs are read by scripts/tests/test_coreml_export.py (coremltools). On macOS the
 * last block runs generate through the CoreML backend end to end.
 */
import { appendFile, cp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requiredBlocks } from '../src/model/contract.js';
import { loadModel, verifyModel } from '../src/model/manifest.js';
import type { Manifest } from '../src/model/manifest-schema.js';
import { findFfmpeg } from '../src/video/ffmpeg.js';
import { assertBuilt, cli, expectOneLineError, ROOT } from './helpers/cli.js';
import { darwinOnly } from './helpers/darwin-only.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { tempDir } from './helpers/model-folder.js';
import { decodeRgbFrames } from './helpers/video-probe.js';

const TINY_COREML = join(ROOT, 'models', 'tiny-coreml');

let root: string;
let manifest: Manifest;
let counter = 0;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-coreml-model-');
  manifest = JSON.parse(await readFile(join(TINY_COREML, 'manifest.json'), 'utf8')) as Manifest;
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function brokenCopy(breakIt: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(root, `broken-${counter++}`);
  await cp(TINY_COREML, dir, { recursive: true });
  await breakIt(dir);
  recordFaults({ badInputs: 1 });
  return dir;
}

describe('models/tiny-coreml', () => {
  it('holds one CoreML package per contract block, with the app’s compute units', async () => {
    const model = await loadModel(TINY_COREML);
    const { t5, stdit } = model.architecture;
    expect(model.blocks.map((block) => block.name)).toEqual(requiredBlocks(t5.num_layers, stdit.depth).map((b) => b.name));
    expect(new Set(model.blocks.map((block) => block.format))).toEqual(new Set(['coreml']));
    for (const block of model.blocks) {
      expect(block.graph.path.endsWith(`${block.name}.mlpackage`), block.name).toBe(true);
      const cpuOnly = /^vae_temporal_part(1|2_1|2_3_\d|2_4|3)$|^vae_spatial_part3_(3|4_\d)$/.test(block.name);
      expect(block.computeUnits, block.name).toBe(cpuOnly ? 'cpu' : 'cpu-gpu');
    }
  });

  it('verifies: every package digest matches (library call and CLI), no package opened', async () => {
    const model = await loadModel(TINY_COREML);
    expect((await verifyModel(model)).checked).toBe('sha256');
    const result = await cli(['--quiet', 'models', 'verify', TINY_COREML]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`${manifest.blocks.length} CoreML packages not opened`);
    expect(result.stdout).not.toContain('open in ONNX Runtime');
  });

  it('inspects like any model folder', async () => {
    const result = await cli(['models', 'inspect', TINY_COREML, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as { blocks: number; components: { component: string; dtypes: string[] }[] };
    expect(summary.blocks).toBe(manifest.blocks.length);
    expect(Object.fromEntries(summary.components.map((c) => [c.component, c.dtypes.sort()]))).toEqual({
      t5: ['float32'],
      stdit: ['float16', 'float32'],
      vae: ['float16', 'float32'],
    });
  });

  it('a changed weight byte fails verify with the block’s field and package', async () => {
    const dir = await brokenCopy((d) =>
      appendFile(join(d, 'stdit', 'stdit3_ST_0.mlpackage', 'Data', 'com.apple.CoreML', 'weights', 'weight.bin'), 'x'),
    );
    // One byte more: the size check at load names it first.
    expectOneLineError(await cli(['models', 'verify', dir]), 5, 'stdit/stdit3_ST_0.mlpackage has', 'bytes, the manifest says');
    const swapped = await brokenCopy(async (d) => {
      const weights = join(d, 'vae', 'vae_spatial_part4.mlpackage', 'Data', 'com.apple.CoreML', 'weights', 'weight.bin');
      const bytes = await readFile(weights);
      bytes.writeUInt8((bytes.readUInt8(bytes.length - 1) + 1) % 256, bytes.length - 1);
      await writeFile(weights, bytes);
    });
    expectOneLineError(await cli(['models', 'verify', swapped]), 5, 'vae/vae_spatial_part4.mlpackage has sha256');
  });

  it('a package that is a file, or a symlink out of the folder, is refused at load', async () => {
    const file = await brokenCopy(async (d) => {
      await rm(join(d, 't5', 't5embed-tokens.mlpackage'), { recursive: true });
      await writeFile(join(d, 't5', 't5embed-tokens.mlpackage'), 'not a package');
    });
    expectOneLineError(await cli(['models', 'inspect', file]), 5, 't5/t5embed-tokens.mlpackage is not a package folder');
    const outside = join(root, 'outside.mlpackage');
    await cp(join(TINY_COREML, 't5', 't5embed-tokens.mlpackage'), outside, { recursive: true });
    const link = await brokenCopy(async (d) => {
      const weights = join(d, 't5', 't5embed-tokens.mlpackage', 'Data', 'com.apple.CoreML', 'weights');
      await rm(weights, { recursive: true });
      await symlink(join(outside, 'Data', 'com.apple.CoreML', 'weights'), weights);
    });
    expectOneLineError(await cli(['models', 'inspect', link]), 5, 'escapes the model folder');
  });

  it('a coreml block listing more than its package is refused', async () => {
    const dir = await brokenCopy(async (d) => {
      const broken = structuredClone(manifest);
      const block = broken.blocks[0];
      if (block?.files[0] === undefined) throw new Error('tiny-coreml manifest has no blocks');
      block.files.push({ ...block.files[0], role: 'weights' });
      await writeFile(join(d, 'manifest.json'), JSON.stringify(broken));
    });
    expectOneLineError(await cli(['models', 'inspect', dir]), 4, 'blocks[0].files: a coreml block lists exactly one');
  });

  it('the ONNX backend refuses its blocks with one line', async () => {
    const out = join(root, 'refused.mp4');
    expectOneLineError(
      await cli(['--quiet', 'generate', 'a red ball', '-o', out, '--model', TINY_COREML, '--steps', '2']),
      2,
      'CoreML package needs --backend coreml',
    );
  });
});

// CoreML prediction exists only on macOS: this runs the shipped CoreML model end to end there and skips elsewhere.
describe('CoreML backend end to end', () => {
  it('generate --backend coreml on models/tiny-coreml gives frames close to the ONNX backend on models/tiny', async (context) => {
    darwinOnly(context);
    const frames = async (backend: string, model: string): Promise<Buffer[]> => {
      const out = join(root, `${backend}.mp4`);
      const args = ['generate', 'a red ball', '-o', out, '--model', model, '--backend', backend, '--seed', '3'];
      const result = await cli([...args, '--steps', '4', '--resolution', '128x128']);
      expect(result.code, result.stderr).toBe(0);
      return decodeRgbFrames((await findFfmpeg(undefined)).path, out, 128, 128);
    };
    const coreml = await frames('coreml', TINY_COREML);
    const onnx = await frames('onnx', join(ROOT, 'models', 'tiny'));
    expect(coreml.length).toBe(onnx.length);
    // float16 STDiT and temporal VAE blocks, plus video encoding: a mean difference of a few levels of 255.
    let total = 0;
    let count = 0;
    for (const [i, frame] of coreml.entries()) {
      const other = onnx[i];
      if (other === undefined) throw new Error(`ONNX run has no frame ${i}`);
      for (let j = 0; j < frame.length; j++) total += Math.abs((frame[j] ?? 0) - (other[j] ?? 0));
      count += frame.length;
    }
    expect(total / count).toBeLessThan(8);
  });
});
