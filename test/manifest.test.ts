import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../src/errors.js';
import { blockSource, loadModel, verifyModel } from '../src/model/manifest.js';
import type { Manifest } from '../src/model/manifest-schema.js';
import { expectSoraError } from './helpers/expect-error.js';
import { fileEntry, tempDir, writeManifest, writeModelFolder } from './helpers/model-folder.js';

let root: string;
let pristine: string;
let counter = 0;

beforeAll(async () => {
  root = await tempDir();
  pristine = join(root, 'pristine');
  await mkdir(pristine);
  await writeModelFolder(pristine);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh copy of the valid model folder, and its manifest to break. */
async function freshModel(): Promise<{ dir: string; manifest: Manifest }> {
  const dir = join(root, `model-${counter++}`);
  await cp(pristine, dir, { recursive: true });
  return { dir, manifest: JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest };
}

function blockIndex(manifest: Manifest, name: string): number {
  const index = manifest.blocks.findIndex((block) => block.name === name);
  expect(index).toBeGreaterThanOrEqual(0);
  return index;
}

describe('loadModel on a valid folder', () => {
  it('returns every block with absolute paths inside the folder', async () => {
    const { dir } = await freshModel();
    const model = await loadModel(dir);
    // 1 embed + 2 layers + 1 final norm, part1 + 2×(ST, TDTM) + part2, 9 + 9 VAE parts.
    expect(model.blocks).toHaveLength(4 + 6 + 18);
    expect(model.manifestPath).toBe(join(dir, 'manifest.json'));
    const st1 = model.blocks.find((block) => block.name === 'stdit3_ST_1');
    expect(st1?.graph.path).toBe(join(dir, 'stdit/stdit3_ST_1.onnx'));
    expect(st1?.files.map((file) => file.relativePath)).toEqual(['stdit/stdit3_ST_1.onnx', 'stdit/stdit3_block_1.data']);
    expect(st1?.files[1]?.field).toBe(`${st1?.field}.files[1]`);
    expect(model.tokenizer.files.map((file) => file.path)).toEqual([join(dir, 'tokenizer.json'), join(dir, 'tokenizer_config.json')]);
  });

  it("carries each block's optional CoreML compute units to the backend", async () => {
    const { dir, manifest } = await freshModel();
    manifest.blocks[0] = { ...manifest.blocks[0]!, computeUnits: 'cpu-gpu' };
    await writeManifest(dir, manifest);
    const model = await loadModel(dir);
    expect(blockSource(model.blocks[0]!).computeUnits).toBe('cpu-gpu');
    expect(blockSource(model.blocks[1]!)).not.toHaveProperty('computeUnits');
  });

  it('accepts a symlink that stays inside the folder', async () => {
    const { dir, manifest } = await freshModel();
    await symlink('tokenizer.json', join(dir, 'linked-tokenizer.json'));
    manifest.tokenizer.files[0] = { ...manifest.tokenizer.files[0]!, path: 'linked-tokenizer.json' };
    await writeManifest(dir, manifest);
    const model = await loadModel(dir);
    expect(model.tokenizer.files[0]?.path).toBe(join(dir, 'linked-tokenizer.json'));
  });

  it('verifies sha256 of every file, reading a shared weight file once', async () => {
    const { dir, manifest } = await freshModel();
    const model = await loadModel(dir);
    const seen: string[] = [];
    const result = await verifyModel(model, (file) => seen.push(file.relativePath));
    const entries = [...manifest.tokenizer.files, ...manifest.blocks.flatMap((block) => block.files)];
    const unique = new Map(entries.map((entry) => [entry.path, entry.bytes]));
    expect(result.files).toBe(unique.size);
    expect(result.bytes).toBe([...unique.values()].reduce((a, b) => a + b, 0));
    expect(seen.filter((path) => path === 'stdit/stdit3_block_0.data')).toHaveLength(1);
  });
});

describe('loadModel rejects a broken manifest', () => {
  interface Case {
    readonly name: string;
    readonly code: ErrorCode;
    /** Fragments the one-line message must contain besides the manifest path. */
    readonly expected: (manifest: Manifest) => string[];
    readonly breakIt: (manifest: Manifest, dir: string) => void | Promise<void>;
  }

  const cases: Case[] = [
    {
      name: 'a missing field',
      code: 'MANIFEST',
      expected: () => ['defaults.steps:', 'expected number'],
      breakIt: (m) => {
        delete (m.defaults as Partial<Manifest['defaults']>).steps;
      },
    },
    {
      name: 'compute units CoreML does not have',
      code: 'MANIFEST',
      expected: () => ['blocks[2].computeUnits:', 'all', 'cpu-gpu', 'cpu-ane'],
      breakIt: (m) => {
        (m.blocks[2] as { computeUnits?: string }).computeUnits = 'gpu';
      },
    },
    {
      name: 'a wrong type',
      code: 'MANIFEST',
      expected: () => ['blocks[0].index:', 'expected number'],
      breakIt: (m) => {
        (m.blocks[0] as { index: unknown }).index = 'zero';
      },
    },
    {
      name: 'an unknown block kind',
      code: 'MANIFEST',
      expected: () => ['blocks[3].kind:', 't5-embed'],
      breakIt: (m) => {
        (m.blocks[3] as { kind: string }).kind = 'stdit-magic';
      },
    },
    {
      name: 'an unknown key',
      code: 'MANIFEST',
      expected: () => ['top level:', 'extra'],
      breakIt: (m) => {
        (m as Record<string, unknown>).extra = 1;
      },
    },
    {
      name: "a path with '..'",
      code: 'MANIFEST',
      expected: () => ['blocks[2].files[0].path:', 'escapes the model folder'],
      breakIt: (m) => {
        m.blocks[2]!.files[0]!.path = 't5/../../outside.onnx';
      },
    },
    {
      name: 'an absolute path',
      code: 'MANIFEST',
      expected: () => ['tokenizer.files[1].path:', 'escapes the model folder'],
      breakIt: (m) => {
        m.tokenizer.files[1]!.path = '/etc/hostname';
      },
    },
    {
      name: 'a duplicate block name',
      code: 'MANIFEST',
      expected: (m) => [`blocks[${m.blocks.length}].name:`, 'duplicate block name "t5block-layer0" (also blocks[1])'],
      breakIt: (m) => {
        m.blocks.push(structuredClone(m.blocks[1]!));
      },
    },
    {
      name: 'a missing block of the contract',
      code: 'MANIFEST',
      expected: () => ['blocks:', 'missing block "stdit3_TDTM_1"', 'architecture.stdit.depth 2'],
      breakIt: (m) => {
        m.blocks.splice(blockIndex(m, 'stdit3_TDTM_1'), 1);
      },
    },
    {
      name: 'a block beyond the architecture',
      code: 'MANIFEST',
      expected: (m) => [`blocks[${blockIndex(m, 'stdit3_ST_1')}].name:`, '"stdit3_ST_1" is not a block of this model'],
      breakIt: (m) => {
        m.architecture.stdit.depth = 1;
      },
    },
    {
      name: 'a name that is not the contract name of its kind and index',
      code: 'MANIFEST',
      expected: () => ['blocks[2].name:', 'is "t5block-layer5", but t5-layer 1 is named "t5block-layer1"'],
      breakIt: (m) => {
        m.blocks[2]!.name = 't5block-layer5';
      },
    },
    {
      name: 'inputs that differ from the contract',
      code: 'MANIFEST',
      expected: (m) => [`blocks[${blockIndex(m, 'stdit3_ST_0')}].inputs:`, 'missing "attn"', 'unexpected "mask"'],
      breakIt: (m) => {
        m.blocks[blockIndex(m, 'stdit3_ST_0')]!.inputs[3]!.name = 'mask';
      },
    },
    {
      name: 'a kind in the wrong component',
      code: 'MANIFEST',
      expected: () => ['blocks[0].component:', 'kind t5-embed belongs to "t5"'],
      breakIt: (m) => {
        m.blocks[0]!.component = 'vae';
      },
    },
    {
      name: 'a default resolution outside the choices',
      code: 'MANIFEST',
      expected: () => ['defaults.resolution:', '"512x512" is not one of defaults.resolutions'],
      breakIt: (m) => {
        m.defaults.resolution = '512x512';
      },
    },
    {
      name: 'a missing file',
      code: 'MODEL',
      expected: () => ['tokenizer.files[0].path:', 'nope.json does not exist'],
      breakIt: (m) => {
        m.tokenizer.files[0]!.path = 'nope.json';
      },
    },
    {
      name: 'a file whose size differs from the manifest',
      code: 'MODEL',
      expected: (m) => [`blocks[${blockIndex(m, 'vae_spatial_part4')}].files[0].bytes:`, 'vae/vae_spatial_part4.onnx has'],
      breakIt: (m) => {
        m.blocks[blockIndex(m, 'vae_spatial_part4')]!.files[0]!.bytes += 1;
      },
    },
    {
      name: 'a symlink that points out of the folder',
      code: 'MANIFEST',
      expected: () => ['tokenizer.files[0].path:', 'outside.json escapes the model folder (it resolves to'],
      breakIt: async (m, dir) => {
        const outside = join(dir, '..', `outside-${counter}.json`);
        await writeFile(outside, '{}');
        await symlink(outside, join(dir, 'outside.json'));
        m.tokenizer.files[0] = { ...(await fileEntry(dir, 'outside.json')) };
      },
    },
  ];

  for (const c of cases) {
    it(`${c.name} → ${c.code}, naming the file and the field`, async () => {
      const { dir, manifest } = await freshModel();
      const expected = c.expected(manifest);
      await c.breakIt(manifest, dir);
      await writeManifest(dir, manifest);
      await expectSoraError(loadModel(dir), c.code, `${join(dir, 'manifest.json')}: `, ...expected);
    });
  }

  it('invalid JSON → MANIFEST naming the file', async () => {
    const { dir } = await freshModel();
    await writeFile(join(dir, 'manifest.json'), '{ "format": "ondevice-sora-model", ');
    await expectSoraError(loadModel(dir), 'MANIFEST', `${join(dir, 'manifest.json')}: invalid JSON:`);
  });

  it('a folder without manifest.json → MANIFEST', async () => {
    const { dir } = await freshModel();
    await rm(join(dir, 'manifest.json'));
    await expectSoraError(loadModel(dir), 'MANIFEST', `${join(dir, 'manifest.json')}: cannot read:`);
  });

  it('a sha256 mismatch → MODEL from verifyModel, naming the field and the file', async () => {
    const { dir, manifest } = await freshModel();
    const index = blockIndex(manifest, 'stdit3_TDTM_1');
    // Same size, different content: loadModel's size check passes, only the hash can tell.
    await writeFile(join(dir, 'stdit/stdit3_block_1.data'), Buffer.alloc(256, 7));
    const model = await loadModel(dir);
    const error = await expectSoraError(
      verifyModel(model),
      'MODEL',
      `${join(dir, 'manifest.json')}: `,
      `blocks[${index - 1}].files[1].sha256: stdit/stdit3_block_1.data has sha256`,
      `the manifest says ${manifest.blocks[index]!.files[1]!.sha256}`,
      '(and 1 more mismatching file entry)',
    );
    expect(error.exitCode).toBe(5);
  });
});
