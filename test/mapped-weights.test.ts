/**
 * BlockSource.mapWeights on real ONNX Runtime sessions: a block of the synthetic model (~19 MB of weights) loaded
 * mapped leaves its weights in the file until a run touches them, loaded as usual copies them. RSS is this process's
 * (the backend's workers are its threads); the weights' file pages are dropped from the page cache first, so that a
 * mapped load cannot find them already resident.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockSource, loadModel, type Model } from '../src/model/manifest.js';
import { evictFile } from '../src/native/memory.js';
import type { BlockSource } from '../src/runtime/backend.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { syntheticModel, syntheticModelProblem } from './helpers/synthetic-model.js';

const problem = await syntheticModelProblem();

describe.skipIf(problem !== null)('weights mapped per load (BlockSource.mapWeights)', () => {
  let model: Model;
  let backend: OnnxBackend;

  beforeAll(async () => {
    model = await loadModel(await syntheticModel());
    backend = new OnnxBackend({ activationArena: false });
    await backend.ready();
  });
  afterAll(() => backend.close());

  /** RSS growth of loading `block` (then unloaded), its files first dropped from the page cache. */
  const loadGrowth = async (block: BlockSource, name: string): Promise<number> => {
    for (const file of model.blocks.find((b) => b.name === name)!.files) await evictFile(file.path);
    const before = process.memoryUsage.rss();
    const handle = await backend.load(block);
    const growth = process.memoryUsage.rss() - before;
    await backend.unload(handle);
    return growth;
  };

  it('a mapped load holds a small part of the weights; a copied one all of them', async () => {
    const block = model.blocks.find((b) => b.name === 'stdit3_ST_0')!;
    const source = blockSource(block);
    expect(backend.mapsWeights).toBe(true);
    const mapped = await loadGrowth({ ...source, mapWeights: true }, block.name);
    const copied = await loadGrowth({ ...source, mapWeights: false }, block.name);
    expect(mapped).toBeLessThan(block.weightBytes / 4);
    expect(copied).toBeGreaterThan(block.weightBytes * 0.75);
  });
});
