/**
 * A folder of the authors' published CoreML packages used without manifest.json. The packages here are fakes:
 * real names and folder structure with placeholder contents of known sizes, which is all that recognising the
 * layout reads. Whether CoreML loads the real packages is only checked on a Mac (--backend coreml).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManifestSchema } from '../src/model/manifest-schema.js';
import { blockSource, loadModel, verifyModel, type Model } from '../src/model/manifest.js';
import { derivePublishedManifest } from '../src/model/published-layout.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { assertBuilt, cli, expectOneLineError, ROOT } from './helpers/cli.js';
import { expectSoraError } from './helpers/expect-error.js';
import { tempDir, writeManifest, writeModelFolder } from './helpers/model-folder.js';

/** Reference §A.1, written out here rather than taken from src/ so the code is checked against the list. */
const range = (count: number): number[] => Array.from({ length: count }, (_, i) => i);
const TEMPORAL_PARTS = ['part1', 'part2_1', 'part2_2', 'part2_3_1', 'part2_3_2', 'part2_3_3', 'part2_3_4', 'part2_4', 'part3'];
const SPATIAL_PARTS = ['part1', 'part2', 'part3_1', 'part3_2', 'part3_3', 'part3_4_1', 'part3_4_2', 'part3_4_3', 'part4'];
const PUBLISHED_NAMES = [
  't5embed-tokens',
  ...range(24).map((i) => `t5block-layer${i}`),
  't5final-layer-norm',
  'stdit3_part1',
  ...range(28).map((i) => `stdit3_ST_${i}`),
  ...range(28).map((i) => `stdit3_TDTM_${i}`),
  'stdit3_part2',
  ...TEMPORAL_PARTS.map((part) => `vae_temporal_${part}`),
  ...SPATIAL_PARTS.map((part) => `vae_spatial_${part}`),
];

type Form = '.mlmodelc' | '.mlpackage';

/** Placeholder files of each form; the weight file's path is the one whose size becomes weightBytes. */
const FORM_FILES: Record<Form, { weights: string; others: string[] }> = {
  '.mlmodelc': { weights: 'weights/weight.bin', others: ['coremldata.bin', 'model.mil'] },
  '.mlpackage': {
    weights: 'Data/com.apple.CoreML/weights/weight.bin',
    others: ['Manifest.json', 'Data/com.apple.CoreML/model.mlmodel'],
  },
};
const PLACEHOLDER = 'placeholder';

/** Distinct per package (ST_i and TDTM_i differ), so a sum proves every package's own weight file was counted. */
const weightSize = (name: string): number => PUBLISHED_NAMES.indexOf(name) + 1;

async function writePackage(dir: string, name: string, form: Form): Promise<void> {
  const root = join(dir, `${name}${form}`);
  const { weights, others } = FORM_FILES[form];
  const files: [string, string | Buffer][] = [[weights, Buffer.alloc(weightSize(name), 1)], ...others.map((p) => [p, PLACEHOLDER] as [string, string])];
  for (const [path, content] of files) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

async function writePublishedFolder(dir: string, form: Form): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const name of PUBLISHED_NAMES) await writePackage(dir, name, form);
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
    await copyFile(new URL(`fixtures/tokenizer/${name}`, import.meta.url), join(dir, name));
  }
}

let root: string;
let compiled: string;
let packaged: string;
let counter = 0;

beforeAll(async () => {
  root = await tempDir();
  compiled = join(root, 'compiled');
  packaged = join(root, 'packaged');
  await writePublishedFolder(compiled, '.mlmodelc');
  await writePublishedFolder(packaged, '.mlpackage');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function copyOf(folder: string): Promise<string> {
  const dir = join(root, `copy-${counter++}`);
  await cp(folder, dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

function block(model: Model, name: string) {
  const found = model.blocks.find((b) => b.name === name);
  if (found === undefined) throw new Error(`no block ${name}`);
  return found;
}

const totalWeights = PUBLISHED_NAMES.reduce((sum, name) => sum + weightSize(name), 0);

describe('fake published packages (real names and sizes, placeholder contents) load without manifest.json', () => {
  for (const [form, folder] of [
    ['.mlmodelc', () => compiled],
    ['.mlpackage', () => packaged],
  ] as const) {
    it(`${form}: all 102 blocks, kinds, indices, weight bytes and package sizes`, async () => {
      const dir = folder();
      const model = await loadModel(dir);
      expect(model.source).toEqual({ kind: 'published-coreml', ignored: [] });
      expect(model.description).toBe('published On-device Sora CoreML packages (derived manifest)');
      expect(model.blocks.map((b) => b.name).sort()).toEqual([...PUBLISHED_NAMES].sort());
      expect(new Set(model.blocks.map((b) => b.format))).toEqual(new Set(['coreml']));

      const kinds: Record<string, number> = {};
      for (const b of model.blocks) kinds[b.kind] = (kinds[b.kind] ?? 0) + 1;
      expect(kinds).toEqual({
        't5-embed': 1,
        't5-layer': 24,
        't5-final-norm': 1,
        'stdit-part1': 1,
        'stdit-st': 28,
        'stdit-tdtm': 28,
        'stdit-part2': 1,
        'vae-temporal': 9,
        'vae-spatial': 9,
      });
      const kindAndIndex = (name: string) => [block(model, name).kind, block(model, name).index];
      expect(kindAndIndex('t5block-layer23')).toEqual(['t5-layer', 23]);
      expect(kindAndIndex('stdit3_TDTM_27')).toEqual(['stdit-tdtm', 27]);
      expect(kindAndIndex('vae_spatial_part3_4_2')).toEqual(['vae-spatial', 6]);
      expect(block(model, 'vae_temporal_part3').component).toBe('vae');

      // ST and TDTM of one index each carry their own weight file in the published set.
      const st = block(model, 'stdit3_ST_5');
      const tdtm = block(model, 'stdit3_TDTM_5');
      expect(st.weightBytes).toBe(weightSize('stdit3_ST_5'));
      expect(tdtm.weightBytes).toBe(weightSize('stdit3_TDTM_5'));
      expect(model.blocks.reduce((sum, b) => sum + b.weightBytes, 0)).toBe(totalWeights);

      expect(st.graph.path).toBe(join(dir, `stdit3_ST_5${form}`));
      expect(st.files).toHaveLength(1);
      expect(st.graph.bytes).toBe(weightSize('stdit3_ST_5') + 2 * PLACEHOLDER.length);
      expect(st.graph.sha256).toBeUndefined();
      const tokenizerPaths = ['tokenizer.json', 'tokenizer_config.json'].map((name) => join(dir, name));
      expect(model.tokenizer.files.map((f) => f.path)).toEqual(tokenizerPaths);
      expect(blockSource(st)).toMatchObject({ name: 'stdit3_ST_5', format: 'coreml', path: st.graph.path, weightBytes: st.weightBytes });
    });
  }

  it('derives the real architecture, the app defaults and the quirks', async () => {
    const model = await loadModel(compiled);
    expect(model.architecture.t5).toMatchObject({ num_layers: 24, d_model: 4096, num_heads: 64, d_kv: 64, d_ff: 10240 });
    expect(model.architecture.stdit).toMatchObject({ depth: 28, hidden_size: 1152, num_heads: 16, caption_channels: 4096 });
    expect(model.architecture.vae).toMatchObject({ name: 'OpenSora-VAE-v1.2', micro_frame_size: 17 });
    expect(model.defaults).toEqual({
      steps: 30,
      cfgScale: 7,
      fps: 24,
      aestheticScore: 6.5,
      resolution: '256x256',
      numFrames: 68,
      resolutions: ['256x256', '192x192'],
      numFramesChoices: [68],
    });
    expect(model.quirks).toEqual({ maxCaptionRows: 300, evenTdtmOnly: true, appTimestepTransform: 'ios' });
    expect(model.tokenizer).toMatchObject({ maxLength: 300, padId: 0, eosId: 1 });
  });

  it("gives every package the app's compute units (SoraPipeline.swift, VAEDecoder.swift), written out here", async () => {
    const model = await loadModel(compiled);
    const cpuOnly = new Set([
      ...TEMPORAL_PARTS.filter((part) => part !== 'part2_2').map((part) => `vae_temporal_${part}`),
      ...['part3_3', 'part3_4_1', 'part3_4_2', 'part3_4_3'].map((part) => `vae_spatial_${part}`),
    ]);
    for (const name of PUBLISHED_NAMES) {
      expect([name, blockSource(block(model, name)).computeUnits]).toEqual([name, cpuOnly.has(name) ? 'cpu' : 'cpu-gpu']);
    }
  });

  it('records the published input types and shapes: integers as float32, 16-head mask, part2 t = outT', async () => {
    const model = await loadModel(compiled);
    const input = (blockName: string, name: string) => block(model, blockName).inputs.find((spec) => spec.name === name);
    expect(input('t5embed-tokens', 'input_ids')).toEqual({ name: 'input_ids', dtype: 'float32', shape: [1, 300] });
    expect(input('stdit3_part1', 'padH')?.dtype).toBe('float32');
    expect(input('stdit3_part2', 'padW')?.dtype).toBe('float32');
    expect(input('stdit3_ST_0', 'T')?.dtype).toBe('float32');
    expect(input('stdit3_TDTM_3', 'attn')?.shape).toEqual([1, 16, 'Q', 'M']);
    expect(input('stdit3_part2', 't')?.shape).toEqual([2, 1152]);
    expect(block(model, 'stdit3_part1').outputs.find((spec) => spec.name === 'outT')?.shape).toEqual([2, 1152]);
    expect(input('t5block-layer7', 'position_bias')?.shape).toEqual([1, 64, 300, 300]);
    expect(block(model, 'vae_temporal_part3').outputs[0]?.shape).toEqual([1, 4, 17, 'h', 'w']);
    expect(block(model, 'vae_spatial_part4').outputs[0]?.shape).toEqual([1, 3, 4, '8h', '8w']);
  });

  it('the derived manifest has the shape of ours (schema-valid once the unavailable sha256 are filled in)', async () => {
    const manifest = (await derivePublishedManifest(compiled))?.manifest;
    const hashed = <F>(files: readonly F[] | undefined) => files?.map((f) => ({ ...f, sha256: '0'.repeat(64) }));
    const withHashes = {
      ...manifest,
      tokenizer: { ...manifest?.tokenizer, files: hashed(manifest?.tokenizer.files) },
      blocks: manifest?.blocks.map((b) => ({ ...b, files: hashed(b.files) })),
    };
    const parsed = ManifestSchema.safeParse(withHashes);
    expect(parsed.error?.issues).toBeUndefined();
  });

  const python = '/usr/bin/python3';
  it.skipIf(!existsSync(python))('its architecture equals the full-size configs of the Python model code', async () => {
    const script =
      'import dataclasses, json\n' +
      'from sora.configs import get_stdit3_config, get_t5_config\n' +
      'from sora.vae_config import VAE_CONFIGS\n' +
      "print(json.dumps({'t5': dataclasses.asdict(get_t5_config('t5-v1_1-xxl')),\n" +
      "                  'stdit': dataclasses.asdict(get_stdit3_config('STDiT3-XL/2')),\n" +
      "                  'vae': dataclasses.asdict(VAE_CONFIGS['OpenSora-VAE-v1.2'])}))\n";
    const { stdout } = await promisify(execFile)(python, ['-c', script], {
      env: { ...process.env, PYTHONPATH: join(ROOT, 'scripts') },
    });
    expect((await loadModel(compiled)).architecture).toEqual(JSON.parse(stdout));
  });

  it('mixes forms; with both forms of a name the .mlmodelc is used; stray packages are ignored and listed', async () => {
    const dir = await copyOf(compiled);
    await rm(join(dir, 'vae_spatial_part2.mlmodelc'), { recursive: true });
    await writePackage(dir, 'vae_spatial_part2', '.mlpackage');
    await writePackage(dir, 'stdit3_part1', '.mlpackage');
    await writePackage(dir, 'stdit3_part2_macos15', '.mlmodelc');
    const model = await loadModel(dir);
    expect(block(model, 'vae_spatial_part2').graph.path).toBe(join(dir, 'vae_spatial_part2.mlpackage'));
    expect(block(model, 'stdit3_part1').graph.path).toBe(join(dir, 'stdit3_part1.mlmodelc'));
    const ignored = ['stdit3_part1.mlpackage', 'stdit3_part2_macos15.mlmodelc'];
    expect(model.source).toEqual({ kind: 'published-coreml', ignored });
    expect(model.blocks).toHaveLength(102);
  });
});

describe('an incomplete or unsafe published folder is refused with one line', () => {
  it('one missing package → MODEL naming it', async () => {
    const dir = await copyOf(compiled);
    await rm(join(dir, 'stdit3_TDTM_13.mlmodelc'), { recursive: true });
    await expectSoraError(
      loadModel(dir),
      'MODEL',
      `${dir}: incomplete published On-device Sora CoreML packages: missing stdit3_TDTM_13 (each of the 102 packages`,
    );
  });

  it('many missing names → the first five and a count; missing tokenizer files are named too', async () => {
    const dir = await copyOf(compiled);
    for (const name of PUBLISHED_NAMES.slice(0, 7)) await rm(join(dir, `${name}.mlmodelc`), { recursive: true });
    await rm(join(dir, 'tokenizer_config.json'));
    await expectSoraError(
      loadModel(dir),
      'MODEL',
      'missing t5embed-tokens, t5block-layer0, t5block-layer1, t5block-layer2, t5block-layer3 and 3 more',
    );
    await rename(join(dir, 'tokenizer.json'), join(dir, 'other.json'));
    for (const name of PUBLISHED_NAMES.slice(7)) await rm(join(dir, `${name}.mlmodelc`), { recursive: true });
    await writePackage(dir, 'stdit3_part1', '.mlmodelc');
    // One package of 102 is not this layout: the ordinary missing-manifest error.
    await expectSoraError(loadModel(dir), 'MANIFEST', `${join(dir, 'manifest.json')}: cannot read:`);
  });

  it('a missing tokenizer file alone → MODEL naming it', async () => {
    const dir = await copyOf(packaged);
    await rm(join(dir, 'tokenizer.json'));
    await expectSoraError(loadModel(dir), 'MODEL', 'missing tokenizer.json (each of the 102 packages');
  });

  it('a weight file symlinked out of the folder → MODEL naming the link', async () => {
    const dir = await copyOf(compiled);
    const outside = join(root, `outside-${counter}.bin`);
    await writeFile(outside, 'x');
    const link = join(dir, 'stdit3_ST_2.mlmodelc', 'weights', 'weight.bin');
    await rm(link);
    await symlink(outside, link);
    await expectSoraError(loadModel(dir), 'MODEL', `${link}: escapes the model folder (it resolves to ${outside})`);
  });

  it('a whole package symlinked out of the folder → MODEL', async () => {
    const dir = await copyOf(compiled);
    const outside = join(root, `outside-package-${counter}`);
    await rename(join(dir, 'vae_temporal_part1.mlmodelc'), outside);
    await symlink(outside, join(dir, 'vae_temporal_part1.mlmodelc'));
    await expectSoraError(loadModel(dir), 'MODEL', `${join(dir, 'vae_temporal_part1.mlmodelc')}: escapes the model folder`);
  });

  it('a symlink that stays inside the folder is accepted (a TDTM package sharing its ST weights)', async () => {
    const dir = await copyOf(compiled);
    const link = join(dir, 'stdit3_TDTM_4.mlmodelc', 'weights', 'weight.bin');
    await rm(link);
    await symlink(join(dir, 'stdit3_ST_4.mlmodelc', 'weights', 'weight.bin'), link);
    expect(block(await loadModel(dir), 'stdit3_TDTM_4').weightBytes).toBe(weightSize('stdit3_ST_4'));
  });

  it('a package name that is a file, not a folder → MODEL', async () => {
    const dir = await copyOf(compiled);
    await rm(join(dir, 't5final-layer-norm.mlmodelc'), { recursive: true });
    await writeFile(join(dir, 't5final-layer-norm.mlmodelc'), PLACEHOLDER);
    await expectSoraError(loadModel(dir), 'MODEL', `${join(dir, 't5final-layer-norm.mlmodelc')}: is not a folder`);
  });
});

describe('verify, backends and manifest.json with CoreML packages', () => {
  it('verifyModel checks presence and structure only, and names a package missing a file of its form', async () => {
    const result = await verifyModel(await loadModel(packaged));
    expect(result.checked).toBe('structure');
    expect(result.files).toBe(104);

    const dir = await copyOf(compiled);
    await rm(join(dir, 'stdit3_part2.mlmodelc', 'model.mil'));
    const missing = `${join(dir, 'stdit3_part2.mlmodelc')}: missing model.mil`;
    await expectSoraError(verifyModel(await loadModel(dir)), 'MODEL', missing);
  });

  it('the ONNX backend refuses a CoreML block with one line', async () => {
    const model = await loadModel(compiled);
    const backend = new OnnxBackend({ logger: pino({ level: 'silent' }), workers: 1 });
    try {
      const error = await expectSoraError(backend.load(blockSource(block(model, 't5embed-tokens'))), 'USAGE');
      expect(error.message).toBe('t5embed-tokens: CoreML package needs --backend coreml (macOS)');
    } finally {
      await backend.close();
    }
  });

  it('a coreml block in manifest.json must list its one package folder (not an ONNX file) → MANIFEST naming the field', async () => {
    const dir = join(root, `onnx-${counter++}`);
    await mkdir(dir);
    const manifest = await writeModelFolder(dir);
    manifest.blocks[3] = { ...manifest.blocks[3]!, format: 'coreml' };
    await writeManifest(dir, manifest);
    await expectSoraError(
      loadModel(dir),
      'MANIFEST',
      `${join(dir, 'manifest.json')}: blocks[3].files: a coreml block lists exactly one .mlpackage or .mlmodelc folder`,
    );
  });
});

describe('ondevice-sora models on fake published packages (built CLI)', () => {
  beforeAll(() => assertBuilt());

  it('inspect says the manifest is derived and shows the real sizes', async () => {
    const result = await cli(['models', 'inspect', compiled]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('on-device-sora-coreml: published On-device Sora CoreML packages (derived manifest)');
    expect(result.stdout).toMatch(/^t5 +26 +t5-embed 1, t5-layer 24, t5-final-norm 1 +float32 /m);
    expect(result.stdout).toMatch(/^stdit +58 +stdit-part1 1, stdit-st 28, stdit-tdtm 28, stdit-part2 1 +float32 /m);
    expect(result.stdout).toMatch(/^vae +18 +vae-temporal 9, vae-spatial 9 +float32 /m);
    expect(result.stdout).toMatch(/^total +102 /m);
    expect(result.stdout).toContain('architecture: t5 24 layers, d_model 4096, 64 heads; stdit depth 28, hidden 1152, 16 heads');
    expect(result.stdout).toContain('defaults: 30 steps, cfg 7, 24 fps, aesthetic 6.5, 256x256, 68 frames');
    expect(result.stdout).toContain('quirks: caption rows ≤ 300 (prompt ≤ 149 tokens + EOS); TDTM needs an even number');
    expect(result.stdout).toContain('timestep transform ios');

    const json = JSON.parse((await cli(['models', 'inspect', compiled, '--json'])).stdout) as {
      blocks: number;
      source: { kind: string };
      components: { component: string; weightBytes: number }[];
    };
    expect(json.blocks).toBe(102);
    expect(json.source.kind).toBe('published-coreml');
    expect(json.components.reduce((sum, c) => sum + c.weightBytes, 0)).toBe(totalWeights);
  });

  it('verify says it checked presence and structure only', async () => {
    const result = await cli(['--quiet', 'models', 'verify', packaged]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`${packaged}: ok (presence and structure only)`);
    expect(result.stdout).toContain('102 CoreML packages and 2 tokenizer files present');
    expect(result.stdout).toContain('no sha256 available');
  });

  it('inspect on an incomplete folder exits 5 with one line naming the missing package', async () => {
    const dir = await copyOf(compiled);
    await rm(join(dir, 'vae_spatial_part4.mlmodelc'), { recursive: true });
    expectOneLineError(await cli(['models', 'inspect', dir]), 5, 'missing vae_spatial_part4');
  });
});
