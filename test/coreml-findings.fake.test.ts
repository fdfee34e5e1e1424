/**
 * The review findings of the CoreML backend (issue 15), each against a FAKE native bridge (CoreML cannot run on
 * Linux; test/helpers/fake-coreml-bridge.ts follows Apple's documented behaviour) or real package files:
 *   1. flexible axes are NSRanges (largest size location + length − 1), read robustly;
 *   2. a package's specification version decides the macOS it needs, checked before any work;
 *   3. compute units come per block from the manifest, `--compute-units` overriding;
 *   7. the compile cache is keyed without reading weights, hashes in full only on a mismatch, and can be pruned;
 *   8. outputs are offered back as output backings once their shapes are known.
 * Findings 4–6 are native (build targets, teardown, overflow and input copies): test/build-native.test.ts,
 * scripts/check-coreml-bridge.sh and test/coreml-bridge.darwin.test.ts.
 */
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { BridgeOutput, FeatureDescription } from '../src/native/coreml.js';
import type { BlockSource, Tensor } from '../src/runtime/backend.js';
import { CoreMLBackend } from '../src/runtime/coreml-backend.js';
import { cacheUsage, pruneCache } from '../src/runtime/coreml-cache.js';
import { checkMacosFor, macosSatisfies, packageRequirement } from '../src/runtime/coreml-package.js';
import { rangeReading, sizeBounds } from '../src/runtime/coreml-tensors.js';
import { rejection } from './helpers/expect-error.js';
import { syntheticSpec, writeMlmodelc, writeMlpackage } from './helpers/coreml-package.js';
import { bridgeError, FakeCoreMLBridge, feature, nsrange, span, unbounded } from './helpers/fake-coreml-bridge.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sora-coreml-findings-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const f32 = (dims: number[], values?: number[]): Tensor => ({
  dtype: 'float32',
  dims,
  data: values ? Float32Array.from(values) : new Float32Array(dims.reduce((a, b) => a * b, 1)),
});

function backendFor(fake: FakeCoreMLBridge, options: { macosVersion?: string | null; computeUnits?: 'cpu-ane' } = {}): CoreMLBackend {
  return new CoreMLBackend(fake, { cacheDir: join(dir, 'cache'), macosVersion: '15.0', ...options });
}

function compiled(name: string, extra: Partial<BlockSource> = {}, specificationVersion = 7): BlockSource {
  return { name, path: writeMlmodelc(join(dir, `${name}.mlmodelc`), { specificationVersion }), weightBytes: 10, ...extra };
}

describe('finding 1: shape ranges are NSRanges (fake bridge)', () => {
  const attn = (heads: FeatureDescription['shapeConstraint']): FeatureDescription => ({
    name: 'attn',
    dataType: 'float32',
    shape: [1, 16, 4, 3],
    shapeConstraint: heads,
  });

  it('reads the documented NSRange: a fixed axis has length 1, the largest size is location + length − 1', () => {
    const documented = attn({ kind: 'range', ranges: [nsrange(1, 1), nsrange(16, 16), nsrange(2, 8), unbounded(0)] });
    expect(rangeReading(documented)).toBe('nsrange');
    expect(sizeBounds(documented)).toEqual([[1, 1], [16, 16], [2, 8], [0, -1]]);
  });

  it('tells the other reading (length = max − min) by a zero length or a default size at location + length', () => {
    const zeroLength = attn({ kind: 'range', ranges: [span(1, 1), span(16, 16), span(2, 8), span(1, 4)] });
    expect(rangeReading(zeroLength)).toBe('span');
    expect(sizeBounds(zeroLength)).toEqual([[1, 1], [16, 16], [2, 8], [1, 4]]);
    const defaultAtEnd = feature('x', 'float32', [8], [{ location: 2, length: 6 }]);
    expect([rangeReading(defaultAtEnd), sizeBounds(defaultAtEnd)]).toEqual(['span', [[2, 8]]]);
  });

  for (const [reading, ranges] of [
    ['NSRange', [nsrange(1, 1), nsrange(16, 16), nsrange(2, 8), nsrange(0, 4)]],
    ['length = max − min', [span(1, 1), span(16, 16), span(2, 8), span(0, 4)]],
  ] as const) {
    it(`widens a one-head mask to the 16 heads of a fixed axis inside a range (${reading})`, async () => {
      const fake = new FakeCoreMLBridge({ stdit3_ST_0: { inputs: [attn({ kind: 'range', ranges: [...ranges] })], outputs: [] } });
      const backend = backendFor(fake);
      await backend.run(await backend.load(compiled('stdit3_ST_0')), { attn: f32([1, 1, 2, 3], [0, -1, -2, -3, 0, -5]) });
      const fed = fake.predictions[0]?.inputs[0];
      expect(fed?.shape).toEqual([1, 16, 2, 3]);
      expect(fed?.data).toHaveLength(96);
    });
  }

  it('refuses one size past the documented upper bound, naming the bounds', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [feature('q', 'float32', [4], [nsrange(2, 8)])], outputs: [] } });
    const backend = backendFor(fake);
    const handle = await backend.load(compiled('blk'));
    await backend.run(handle, { q: f32([8]) });
    expect((await rejection(backend.run(handle, { q: f32([9]) }))).message).toBe(
      'blk: input q has shape [9] but the model accepts [2..8]',
    );
  });
});

describe('finding 2: specification versions and the macOS a folder needs', () => {
  it('reads the specification version of a package coremltools wrote (the probe: 7, macOS 13.0)', async () => {
    expect(await packageRequirement(writeMlpackage(join(dir, 'probe.mlpackage')))).toEqual({ specificationVersion: 7, macos: '13.0' });
  });

  it('finds field 1 of the model spec after other fields, and maps spec versions to macOS', async () => {
    const read = async (version: number) => packageRequirement(writeMlpackage(join(dir, `v${version}.mlpackage`), { spec: syntheticSpec(version) }));
    expect(await read(9)).toEqual({ specificationVersion: 9, macos: '15.0' });
    expect(await read(8)).toEqual({ specificationVersion: 8, macos: '14.0' });
    expect(await read(300)).toEqual({ specificationVersion: 300, macos: 'newer than 15.0' });
  });

  it('reads an .mlmodelc from metadata.json: availability.macOS first, else specificationVersion, else unknown', async () => {
    expect(await packageRequirement(writeMlmodelc(join(dir, 'a.mlmodelc'), { specificationVersion: 9, macOS: '15.0' }))).toEqual({
      specificationVersion: 9,
      macos: '15.0',
    });
    expect(await packageRequirement(writeMlmodelc(join(dir, 'b.mlmodelc'), { specificationVersion: 8 }))).toMatchObject({ macos: '14.0' });
    const bare = join(dir, 'c.mlmodelc');
    writeMlmodelc(bare);
    rmSync(join(bare, 'metadata.json'));
    expect(await packageRequirement(bare)).toEqual({ specificationVersion: null, macos: null });
  });

  it('a package without a root model in Manifest.json is a one-line MODEL error', async () => {
    const path = writeMlpackage(join(dir, 'broken.mlpackage'));
    writeFileSync(join(path, 'Manifest.json'), '{"fileFormatVersion": "1.0.0"}');
    const error = await rejection(packageRequirement(path));
    expect(error.code).toBe('MODEL');
    expect(error.message).toMatch(/broken\.mlpackage\/Manifest\.json: names no root model/);
  });

  it('compares versions numerically; a spec newer than known passes only on a macOS newer than 15', () => {
    expect([macosSatisfies('14.5', '15.0'), macosSatisfies('15.0', '15.0'), macosSatisfies('15.10', '15.9')]).toEqual([false, true, true]);
    expect([macosSatisfies('15.6', 'newer than 15.0'), macosSatisfies('26.0', 'newer than 15.0')]).toEqual([false, true]);
  });

  it('refuses, before compiling or loading anything, a package this macOS cannot load, saying which macOS it needs', async () => {
    const fake = new FakeCoreMLBridge({ stdit3_part1: { inputs: [], outputs: [] } }, '14');
    const backend = backendFor(fake, { macosVersion: '14.5' });
    const packagePath = writeMlpackage(join(dir, 'stdit3_part1.mlpackage'), { specificationVersion: 9 });
    const error = await rejection(backend.load({ name: 'stdit3_part1', path: packagePath, weightBytes: 0 }));
    expect(error.code).toBe('DEPENDENCY');
    expect(error.message).toMatch(
      /stdit3_part1\.mlpackage: needs macOS 15\.0 \(CoreML specification version 9\), this Mac runs macOS 14\.5; update macOS/,
    );
    const compiledError = await rejection(backend.load(compiled('stdit3_part1', {}, 9)));
    expect(compiledError.message).toContain('needs macOS 15.0');
    expect([fake.compiles, fake.loads]).toEqual([[], []]);
  });

  it('names the block needing the newest macOS of a model folder, and passes on a Mac that has it', async () => {
    const blocks = [
      { name: 't5embed-tokens', path: writeMlpackage(join(dir, 't5.mlpackage'), { specificationVersion: 8 }) },
      { name: 'stdit3_part2', path: writeMlpackage(join(dir, 'part2.mlpackage'), { specificationVersion: 9 }) },
      { name: 'vae_spatial_part4', path: compiled('vae_spatial_part4', {}, 7).path },
    ];
    await expect(checkMacosFor(blocks, '14.7')).rejects.toThrow(/part2\.mlpackage: needs macOS 15\.0.*this Mac runs macOS 14\.7/);
    const requirement = await checkMacosFor(blocks, '15.1');
    expect(requirement.newest).toMatchObject({ name: 'stdit3_part2', macos: '15.0', specificationVersion: 9 });
    expect(requirement.blocks.map((block) => block.macos)).toEqual(['14.0', '15.0', '13.0']);

    // What generate and batch call right after making the backend, before any block is touched.
    const fake = new FakeCoreMLBridge({}, '14');
    const sources = blocks.map((block) => ({ ...block, weightBytes: 0 }));
    const error = await rejection(backendFor(fake, { macosVersion: '14.7' }).checkBlocks(sources));
    expect([error.code, fake.compiles.length, fake.loads.length]).toEqual(['DEPENDENCY', 0, 0]);
    expect((await backendFor(fake, { macosVersion: null }).checkBlocks(sources)).newest?.name).toBe('stdit3_part2');
  });
});

describe('finding 3: compute units per block (fake bridge)', () => {
  const models = { t5: { inputs: [], outputs: [] }, vae: { inputs: [], outputs: [] }, other: { inputs: [], outputs: [] } };
  const blocks = (): BlockSource[] => [
    compiled('t5', { computeUnits: 'cpu-gpu' }),
    compiled('vae', { computeUnits: 'cpu' }),
    compiled('other'),
  ];

  it("loads each block with its manifest entry's compute units, `all` when it names none", async () => {
    const fake = new FakeCoreMLBridge(models);
    const backend = backendFor(fake);
    for (const block of blocks()) await backend.load(block);
    expect(fake.loads.map((load) => [load.name, load.computeUnits])).toEqual([['t5', 'cpu-gpu'], ['vae', 'cpu'], ['other', 'all']]);
    expect(backend.device).toBe('per-block');
    expect(backend.stats().map((stats) => stats.device)).toEqual(['cpu-gpu', 'cpu', 'all']);
  });

  it('--compute-units overrides every block', async () => {
    const fake = new FakeCoreMLBridge(models);
    const backend = backendFor(fake, { computeUnits: 'cpu-ane' });
    for (const block of blocks()) await backend.load(block);
    expect(fake.loads.map((load) => load.computeUnits)).toEqual(['cpu-ane', 'cpu-ane', 'cpu-ane']);
    expect(backend.device).toBe('cpu-ane');
  });
});

describe('finding 7: the compile cache (fake bridge)', () => {
  const weightsOf = (path: string): string => join(path, 'Data', 'com.apple.CoreML', 'weights', 'weight.bin');
  const touch = (path: string, seconds: number): void => utimesSync(weightsOf(path), seconds, seconds);
  const loadIn = async (fake: FakeCoreMLBridge, path: string): Promise<CoreMLBackend> => {
    const backend = backendFor(fake);
    await backend.load({ name: 'blk', path, weightBytes: 0 });
    return backend;
  };

  it('keys a package by stats and spec hash: a second process loads the compiled model reading no weight byte', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [], outputs: [] } });
    const path = writeMlpackage(join(dir, 'blk.mlpackage'), { weights: Buffer.alloc(4096, 7) });
    const [first, concurrent] = [backendFor(fake), backendFor(fake)];
    await Promise.all([first.load({ name: 'blk', path, weightBytes: 0 }), first.load({ name: 'blk', path, weightBytes: 0 })]);
    // One compile for two loads at once: the second waits for it, or (when the first is already done by the time it
    // looks, as on a loaded machine) finds it in the cache.
    expect(first.cache.events).toMatchObject({ compiles: 1, fullHashes: 0, reused: 0 });
    expect(first.cache.events.hits).toBeLessThanOrEqual(1);
    await concurrent.load({ name: 'blk', path, weightBytes: 0 });
    expect(concurrent.cache.events).toEqual({ hits: 1, compiles: 0, fullHashes: 0, reused: 0 });
    expect(fake.compiles).toHaveLength(1);
    expect(new Set(fake.loads.map((load) => load.compiledPath)).size).toBe(1);
  });

  it('hashes in full only when only mtimes changed, and reuses the compile once the content hash is known', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [], outputs: [] } });
    const path = writeMlpackage(join(dir, 'blk.mlpackage'), { weights: Buffer.alloc(4096, 7) });
    await loadIn(fake, path);
    touch(path, 1_000_000);
    expect((await loadIn(fake, path)).cache.events).toMatchObject({ fullHashes: 1, compiles: 1 }); // no hash recorded yet
    touch(path, 2_000_000);
    expect((await loadIn(fake, path)).cache.events).toEqual({ hits: 0, compiles: 0, fullHashes: 1, reused: 1 });
    expect(fake.compiles).toHaveLength(2);
  });

  it('compiles again when the content changed: new weights of the same size, a new size, or a new spec', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [], outputs: [] } });
    const path = writeMlpackage(join(dir, 'blk.mlpackage'), { weights: Buffer.alloc(4096, 7) });
    await loadIn(fake, path);
    touch(path, 1_000_000);
    await loadIn(fake, path); // records the content hash
    writeFileSync(weightsOf(path), Buffer.alloc(4096, 8));
    expect((await loadIn(fake, path)).cache.events).toMatchObject({ fullHashes: 1, reused: 0, compiles: 1 });
    writeFileSync(weightsOf(path), Buffer.alloc(100, 8));
    expect((await loadIn(fake, path)).cache.events).toMatchObject({ fullHashes: 0, compiles: 1 });
    // Same sizes and mtimes, another spec: only the spec hash tells.
    const rewrite = (specificationVersion: number): void => {
      writeMlpackage(path, { specificationVersion, weights: Buffer.alloc(100, 8) });
      for (const file of ['Manifest.json', 'Data/com.apple.CoreML/model.mlmodel', 'Data/com.apple.CoreML/weights/weight.bin']) {
        utimesSync(join(path, file), 3_000_000, 3_000_000);
      }
    };
    rewrite(6);
    await loadIn(fake, path);
    rewrite(6);
    expect((await loadIn(fake, path)).cache.events).toMatchObject({ hits: 1, compiles: 0 });
    rewrite(5);
    expect((await loadIn(fake, path)).cache.events).toMatchObject({ hits: 0, fullHashes: 0, compiles: 1 });
  });

  it('models cache prune: removes compiled models of gone or changed packages, unused ones, unreferenced ones, nothing else', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [], outputs: [] } });
    const cacheDir = join(dir, 'cache');
    const [kept, gone, changed] = ['kept', 'gone', 'changed'].map((name) =>
      writeMlpackage(join(dir, name, 'blk.mlpackage'), { weights: Buffer.alloc(1000, 1) }),
    ) as [string, string, string];
    for (const path of [kept, gone, changed]) await loadIn(fake, path);
    writeFileSync(join(cacheDir, 'notes.txt'), 'not the cache’s');
    rmSync(join(dir, 'gone'), { recursive: true });
    writeFileSync(weightsOf(changed), Buffer.alloc(999, 1));
    expect(await cacheUsage(cacheDir)).toMatchObject({ compiledModels: 3 });

    const result = await pruneCache(cacheDir);
    expect(result.removed).toHaveLength(2);
    expect(result.kept).toMatchObject({ compiledModels: 1 });
    const later = await pruneCache(cacheDir, { now: new Date(Date.now() + 31 * 24 * 3600 * 1000) });
    expect([later.removed.length, later.kept.compiledModels]).toEqual([1, 0]);
    expect(readdirSync(cacheDir).sort()).toEqual(['entries', 'notes.txt']);
  });
});

describe('finding 8: output backings (fake bridge)', () => {
  const output = (shape: number[]): BridgeOutput => ({ dataType: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).buffer });

  it('offers the output shapes of the first prediction to the next ones with the same input shapes', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [feature('x', 'float32', [2, 3], [nsrange(1, 4), nsrange(3, 3)])], outputs: [] } });
    fake.outputs = { output: output([2, 3]) };
    const backend = backendFor(fake);
    const handle = await backend.load(compiled('blk'));
    await backend.run(handle, { x: f32([2, 3]) });
    await backend.run(handle, { x: f32([2, 3]) });
    await backend.run(handle, { x: f32([4, 3]) });
    expect(fake.predictions.map((prediction) => prediction.outputShapes)).toEqual([undefined, { output: [2, 3] }, undefined]);
  });

  it('a prediction CoreML refuses with backings runs again without them, and the block is offered none again', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [feature('x', 'float32', [2])], outputs: [] } });
    fake.outputs = { output: output([2]) };
    fake.failures.backings = bridgeError('blk', 'output backing for feature output is not allowed');
    const backend = backendFor(fake);
    const handle = await backend.load(compiled('blk'));
    for (let i = 0; i < 3; i++) expect(Object.keys(await backend.run(handle, { x: f32([2]) }))).toEqual(['output']);
    expect(fake.predictions.map((prediction) => prediction.outputShapes)).toEqual([undefined, { output: [2] }, undefined, undefined]);
  });
});
