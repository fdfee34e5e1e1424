/**
 * The TypeScript CoreML backend against a FAKE native bridge: CoreML cannot run on Linux, so these tests check
 * what the TypeScript side owns (argument marshalling, dtype and shape conversion, caching, error mapping).
 * The fake mimics the bridge's documented JS API (src/native/coreml.ts); the Objective-C++ itself is checked
 * by scripts/check-coreml-bridge.sh.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSoraError, SoraError } from '../src/errors.js';
import type { BridgeInput } from '../src/native/coreml.js';
import type { BlockSource, Tensor } from '../src/runtime/backend.js';
import { CoreMLBackend, createCoreMLBackend, parseComputeUnits } from '../src/runtime/coreml-backend.js';
import { packageContentHash } from '../src/runtime/coreml-cache.js';
import { rejection } from './helpers/expect-error.js';
import { writeMlmodelc, writeMlpackage } from './helpers/coreml-package.js';
import { bridgeError, FakeCoreMLBridge, feature, nsrange, unbounded } from './helpers/fake-coreml-bridge.js';

const f32 = (dims: number[], values: number[]): Tensor => ({ dtype: 'float32', dims, data: Float32Array.from(values) });
const i64 = (dims: number[], values: number[]): Tensor => ({ dtype: 'int64', dims, data: BigInt64Array.from(values.map(BigInt)) });

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sora-coreml-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** An .mlmodelc as the CoreML compiler leaves it (metadata.json with the spec version), macOS 13's spec by default. */
function compiledModel(name: string, specificationVersion = 7): BlockSource {
  const path = writeMlmodelc(join(dir, `${name}.mlmodelc`), { specificationVersion });
  return { name, path, weightBytes: 1000 };
}

function onlyPrediction(fake: FakeCoreMLBridge): Map<string, BridgeInput> {
  expect(fake.predictions).toHaveLength(1);
  return new Map(fake.predictions[0]?.inputs.map((input) => [input.name, input]));
}

describe('CoreML backend on a FAKE native bridge: loading', () => {
  it('fake bridge: loads an .mlmodelc with the requested compute units, which it reports as its device', async () => {
    const fake = new FakeCoreMLBridge({ t5embed: { inputs: [], outputs: [] } });
    const backend = new CoreMLBackend(fake, { computeUnits: 'cpu-ane', cacheDir: join(dir, 'cache'), macosVersion: '15.0' });
    const block = compiledModel('t5embed');
    const handle = await backend.load(block);
    expect(handle.name).toBe('t5embed');
    expect(fake.loads).toEqual([{ name: 't5embed', compiledPath: block.path, computeUnits: 'cpu-ane' }]);
    expect(fake.compiles).toEqual([]);
    expect([backend.kind, backend.device]).toEqual(['coreml', 'cpu-ane']);
  });

  it('fake bridge: rejects a model whose inputs differ from the contract, and unloads it', async () => {
    const fake = new FakeCoreMLBridge({ stdit3_part2: { inputs: [feature('x', 'float32', [2])], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const error = await rejection(backend.load({ ...compiledModel('stdit3_part2'), inputs: ['x', 'z_in'] }));
    expect(error.code).toBe('MODEL');
    expect(error.message).toContain('stdit3_part2');
    expect(error.message).toContain('z_in');
    expect(fake.unloaded).toEqual([1]);
  });

  it('fake bridge: a missing model or a non-CoreML path is a MODEL error before the bridge is called', async () => {
    const fake = new FakeCoreMLBridge({});
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    expect((await rejection(backend.load({ name: 'b', path: join(dir, 'none.mlmodelc'), weightBytes: 0 }))).code).toBe('MODEL');
    writeFileSync(join(dir, 'b.onnx'), '');
    const wrongKind = await rejection(backend.load({ name: 'b', path: join(dir, 'b.onnx'), weightBytes: 0 }));
    expect(wrongKind.message).toContain('.mlmodelc or .mlpackage');
    expect(fake.loads).toEqual([]);
  });
});

describe('CoreML backend on a FAKE native bridge: inputs and outputs', () => {
  it('fake bridge: feeds int64 contract inputs as the types the model declares (ids float32, pads int32)', async () => {
    const fake = new FakeCoreMLBridge({
      t5embed: { inputs: [feature('input_ids', 'float32', [1, 4]), feature('padH', 'int32', [1])], outputs: [] },
    });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const handle = await backend.load(compiledModel('t5embed'));
    await backend.run(handle, { input_ids: i64([1, 4], [4, 5, 32127, 1]), padH: i64([1], [1]) });
    const inputs = onlyPrediction(fake);
    const ids = inputs.get('input_ids');
    expect(ids?.dataType).toBe('float32');
    expect(ids?.data).toBeInstanceOf(Float32Array);
    expect([...(ids?.data ?? [])]).toEqual([4, 5, 32127, 1]);
    expect(ids?.shape).toEqual([1, 4]);
    expect(inputs.get('padH')?.data).toEqual(Int32Array.from([1]));
  });

  it('fake bridge: passes inputs whose type and shape already match without copying', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [feature('x', 'float32', [2, 2])], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const x = f32([2, 2], [1, 2, 3, 4]);
    await backend.run(await backend.load(compiledModel('blk')), { x });
    expect(onlyPrediction(fake).get('x')?.data).toBe(x.data);
  });

  it('fake bridge: converts float32 to IEEE half bits for float16 inputs and decodes half inputs for float32 ones', async () => {
    const fake = new FakeCoreMLBridge({
      blk: { inputs: [feature('half', 'float16', [6]), feature('single', 'float32', [3])], outputs: [] },
    });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const handle = await backend.load(compiledModel('blk'));
    await backend.run(handle, {
      half: f32([6], [1, -2, 0.5, 65504, 3.14159, 70000]),
      single: { dtype: 'float16', dims: [3], data: Uint16Array.from([0x3c00, 0xc000, 0x0001]) },
    });
    const inputs = onlyPrediction(fake);
    // 3.14159 rounds to 0x4248 (3.140625); 70000 overflows half to +infinity.
    expect(inputs.get('half')).toMatchObject({ dataType: 'float16', data: Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7bff, 0x4248, 0x7c00]) });
    expect(inputs.get('single')?.data).toEqual(Float32Array.from([1, -2, 2 ** -24]));
  });

  it('fake bridge: refuses integer conversions that would change a value', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [feature('ids', 'float32', [1]), feature('pad', 'int32', [1])], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const handle = await backend.load(compiledModel('blk'));
    const tooBig = await rejection(backend.run(handle, { ids: i64([1], [2 ** 24 + 1]), pad: i64([1], [0]) }));
    expect(tooBig).toMatchObject({ code: 'BACKEND', message: 'blk: input ids: int64 value 16777217 cannot be fed exactly as float32' });
    const fraction = await rejection(backend.run(handle, { ids: i64([1], [3]), pad: f32([1], [0.5]) }));
    expect(fraction.message).toBe('blk: input pad: float32 value 0.5 cannot be fed exactly as int32');
    expect(fake.predictions).toEqual([]);
  });

  it('fake bridge: repeats a one-head attention mask over the heads the model declares', async () => {
    const attn = feature('attn', 'float32', [1, 16, 2000, 300], [nsrange(1, 1), nsrange(16, 16), nsrange(2, 8), nsrange(0, 4)]);
    const fake = new FakeCoreMLBridge({ stdit3_ST_0: { inputs: [attn], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const mask = f32([1, 1, 2, 3], [0, -1, -2, -3, 0, -5]);
    await backend.run(await backend.load(compiledModel('stdit3_ST_0')), { attn: mask });
    const fed = onlyPrediction(fake).get('attn');
    expect(fed?.shape).toEqual([1, 16, 2, 3]);
    expect(fed?.data).toHaveLength(96);
    for (let head = 0; head < 16; head++) expect([...(fed?.data.subarray(head * 6, head * 6 + 6) ?? [])]).toEqual([...mask.data]);
  });

  it('fake bridge: gives a tensor the model\'s rank when only the rank differs', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [feature('t', 'float32', [1, 2], [nsrange(1, 1), nsrange(2, 2)])], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const t = f32([2], [500, 500]);
    await backend.run(await backend.load(compiledModel('blk')), { t });
    expect(onlyPrediction(fake).get('t')).toMatchObject({ shape: [1, 2], data: t.data });
  });

  it('fake bridge: rejects a shape the model cannot take, naming model, input and both shapes', async () => {
    const attn = feature('attn', 'float32', [1, 16, 2000, 300], [nsrange(1, 1), nsrange(16, 16), nsrange(2, 8), unbounded(0)]);
    const fake = new FakeCoreMLBridge({ stdit3_ST_0: { inputs: [attn], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const handle = await backend.load(compiledModel('stdit3_ST_0'));
    const error = await rejection(backend.run(handle, { attn: f32([1, 1, 9, 1], new Array<number>(9).fill(0)) }));
    expect(error).toMatchObject({
      code: 'BACKEND',
      message: 'stdit3_ST_0: input attn has shape [1, 1, 9, 1] but the model accepts [1, 16, 2..8, 0..]',
    });
  });

  it('fake bridge: missing and undeclared inputs are BACKEND errors', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [feature('x', 'float32', [1])], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const handle = await backend.load(compiledModel('blk'));
    expect((await rejection(backend.run(handle, {}))).message).toBe('blk: input x is missing');
    const extra = await rejection(backend.run(handle, { x: f32([1], [1]), y: f32([1], [1]) }));
    expect(extra.message).toBe('blk: the model has no input y');
  });

  it('fake bridge: returns float32, float16 and int32 outputs as contract tensors, float64 as float32', async () => {
    const fake = new FakeCoreMLBridge({ blk: { inputs: [], outputs: [] } });
    fake.outputs = {
      output: { dataType: 'float32', shape: [2, 1], data: Float32Array.from([1.5, -2]).buffer },
      half: { dataType: 'float16', shape: [2], data: Uint16Array.from([0x3c00, 0x7c00]).buffer },
      T: { dataType: 'int32', shape: [1], data: Int32Array.from([20]).buffer },
      wide: { dataType: 'float64', shape: [1, 2], data: Float64Array.from([0.25, 1e10]).buffer },
    };
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const outputs = await backend.run(await backend.load(compiledModel('blk')), {});
    expect(outputs.output).toEqual({ dtype: 'float32', dims: [2, 1], data: Float32Array.from([1.5, -2]) });
    expect(outputs.half).toEqual({ dtype: 'float16', dims: [2], data: Uint16Array.from([0x3c00, 0x7c00]) });
    expect(outputs.T).toEqual({ dtype: 'int32', dims: [1], data: Int32Array.from([20]) });
    expect(outputs.wide).toEqual({ dtype: 'float32', dims: [1, 2], data: Float32Array.from([0.25, 1e10]) });
  });
});

describe('CoreML backend on a FAKE native bridge: errors and lifecycle', () => {
  it('fake bridge: maps a prediction failure to a one-line BACKEND error "<model>: <NSError description>"', async () => {
    const fake = new FakeCoreMLBridge({ stdit3_ST_4: { inputs: [], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const handle = await backend.load(compiledModel('stdit3_ST_4'));
    const nsError = bridgeError('stdit3_ST_4', 'Failed to evaluate model 0 in pipeline.\n  Unable to compute the prediction.', 'com.apple.CoreML', 1);
    fake.failures.predict = nsError;
    const error = await rejection(backend.run(handle, {}));
    expect(error).toMatchObject({
      code: 'BACKEND',
      message: 'stdit3_ST_4: Failed to evaluate model 0 in pipeline. Unable to compute the prediction.',
    });
    expect(error.cause).toBe(nsError);
  });

  it('fake bridge: maps load and compile failures the same way', async () => {
    const fake = new FakeCoreMLBridge({});
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    fake.failures.load = bridgeError('vae_spatial_part1', 'The model file is corrupted.');
    expect(await rejection(backend.load(compiledModel('vae_spatial_part1')))).toMatchObject({
      code: 'BACKEND',
      message: 'vae_spatial_part1: The model file is corrupted.',
    });
    const packagePath = writeMlpackage(join(dir, 'p.mlpackage'));
    fake.failures.compile = bridgeError('p', 'compiler error: unsupported op');
    expect((await rejection(backend.load({ name: 'p', path: packagePath, weightBytes: 0 }))).message).toBe('p: compiler error: unsupported op');
  });

  it('fake bridge: unload releases the native model, a later run is refused, close unloads the rest', async () => {
    const fake = new FakeCoreMLBridge({ a: { inputs: [], outputs: [] }, b: { inputs: [], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const a = await backend.load(compiledModel('a'));
    await backend.load(compiledModel('b'));
    await backend.unload(a);
    expect(fake.unloaded).toEqual([1]);
    expect((await rejection(backend.run(a, {}))).message).toBe('block a is not loaded (handle 1)');
    await backend.close();
    expect(fake.unloaded).toEqual([1, 2]);
  });

  it('fake bridge: records load and run times per loaded block', async () => {
    const fake = new FakeCoreMLBridge({ a: { inputs: [], outputs: [] } });
    const backend = new CoreMLBackend(fake, { cacheDir: join(dir, 'cache') });
    const handle = await backend.load(compiledModel('a'));
    await backend.run(handle, {});
    await backend.run(handle, {});
    const [stats] = backend.stats();
    expect(stats).toMatchObject({ name: 'a', weightBytes: 1000 });
    expect(stats?.runMs).toHaveLength(2);
    expect(stats?.loadMs).toBeGreaterThanOrEqual(0);
  });
});

describe('CoreML backend without a fake', () => {
  it.runIf(process.platform !== 'darwin')('refuses to start outside macOS with a one-line DEPENDENCY error', () => {
    expect(() => createCoreMLBackend()).toThrow(
      new SoraError('DEPENDENCY', 'the CoreML backend needs macOS on Apple silicon; use --backend onnx'),
    );
    try {
      createCoreMLBackend();
    } catch (error) {
      expect(isSoraError(error) && error.code).toBe('DEPENDENCY');
    }
  });

  it('accepts exactly the four --compute-units values', () => {
    expect(['all', 'cpu', 'cpu-gpu', 'cpu-ane'].map(parseComputeUnits)).toEqual(['all', 'cpu', 'cpu-gpu', 'cpu-ane']);
    expect(() => parseComputeUnits('gpu')).toThrow(/--compute-units must be one of all, cpu, cpu-gpu, cpu-ane, got "gpu"/);
  });

  it('hashes a package by file names and contents', async () => {
    const root = join(dir, 'x.mlpackage');
    mkdirSync(join(root, 'Data'), { recursive: true });
    writeFileSync(join(root, 'Data', 'w.bin'), 'abc');
    const first = await packageContentHash(root);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await packageContentHash(root)).toBe(first);
    writeFileSync(join(root, 'Data', 'w.bin'), 'abd');
    const changedContent = await packageContentHash(root);
    rmSync(join(root, 'Data', 'w.bin'));
    writeFileSync(join(root, 'Data', 'v.bin'), 'abd');
    expect(new Set([first, changedContent, await packageContentHash(root)]).size).toBe(3);
  });
});
