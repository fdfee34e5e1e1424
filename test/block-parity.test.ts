import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_KINDS } from '../src/model/contract.js';
import { blockSource, loadModel, type Model } from '../src/model/manifest.js';
import { hostOutputs, type Backend } from '../src/runtime/backend.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { toFloat32 } from '../src/runtime/tensor.js';
import { GOLDEN_DIR, maxRelativeError, readGolden, TINY_MODEL } from './helpers/golden.js';

/** Every per-block golden file (the sampler goldens are end-to-end and have their own test). */
const BLOCK_GOLDENS = readdirSync(fileURLToPath(GOLDEN_DIR))
  .filter((file) => file.endsWith('.json') && !file.startsWith('sampler-'))
  .sort();

describe('tiny-model blocks through the ONNX backend match the PyTorch golden outputs', () => {
  let model: Model;
  let backend: Backend;

  beforeAll(async () => {
    model = await loadModel(TINY_MODEL);
    backend = new OnnxBackend();
  });

  afterAll(async () => {
    await backend.close();
  });

  it('has golden data for every block kind of the contract', async () => {
    const names = new Set(await Promise.all(BLOCK_GOLDENS.map(async (file) => (await readGolden(file)).block)));
    const kinds = new Set(model.blocks.filter((b) => names.has(b.name)).map((b) => b.kind));
    expect([...kinds].sort()).toEqual([...BLOCK_KINDS].sort());
  });

  it.each(BLOCK_GOLDENS)('%s: max relative error ≤ 1e-4', async (file) => {
    const golden = await readGolden(file);
    const block = model.blocks.find((b) => b.name === golden.block);
    expect(block, `block ${golden.block} in models/tiny`).toBeDefined();
    const handle = await backend.load(blockSource(block!));
    try {
      const outputs = hostOutputs(await backend.run(handle, golden.inputs));
      expect(Object.keys(outputs).sort()).toEqual(Object.keys(golden.outputs).sort());
      for (const [name, expected] of Object.entries(golden.outputs)) {
        const actual = outputs[name]!;
        expect(actual.dims, `${file}: ${name} shape`).toEqual(expected.dims);
        if (expected.dtype === 'int64') {
          expect(actual.data, `${file}: ${name}`).toEqual(expected.data);
        } else {
          expect(maxRelativeError(toFloat32(actual), toFloat32(expected)), `${file}: ${name}`).toBeLessThanOrEqual(1e-4);
        }
      }
    } finally {
      await backend.unload(handle);
    }
  });
});
