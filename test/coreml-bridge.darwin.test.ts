/**
 * The real CoreML bridge (sora_coreml.node) on a Mac, on the probe package (test/fixtures/coreml/range-probe.mlmodel:
 * y = 2x + 1, x of shape [1, 16, 2..8, 1..4], specification version 7). Off macOS every test skips with the reason;
 * `npm run check:mac` runs them and reports the assumptions they settle.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';

import { COMPUTE_UNITS, loadCoreMLBridge, type BridgeInput, type CoreMLBridge } from '../src/native/coreml.js';
import { CoreMLBackend } from '../src/runtime/coreml-backend.js';
import { macosVersion, packageRequirement } from '../src/runtime/coreml-package.js';
import { rangeReading, sizeBounds } from '../src/runtime/coreml-tensors.js';
import { writeMlpackage } from './helpers/coreml-package.js';
import { darwinOnly } from './helpers/darwin-only.js';
import { ROOT } from './helpers/cli.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sora-coreml-darwin-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The real bridge and the probe compiled into this test's folder; skips off macOS. */
async function probe(context: TestContext): Promise<{ bridge: CoreMLBridge; compiled: string; packagePath: string }> {
  darwinOnly(context);
  const bridge = loadCoreMLBridge();
  const packagePath = writeMlpackage(join(dir, 'probe.mlpackage'));
  const compiled = join(dir, 'probe.mlmodelc');
  await bridge.compileModel('probe', packagePath, compiled);
  return { bridge, compiled, packagePath };
}

function input(shape: number[]): BridgeInput {
  const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => (i % 17) / 17 - 0.5);
  return { name: 'x', dataType: 'float32', shape, data };
}

function expectAffine(x: Float32Array, y: Float32Array): void {
  expect(y).toHaveLength(x.length);
  for (let i = 0; i < x.length; i++) expect(Math.abs(y[i]! - (2 * x[i]! + 1))).toBeLessThan(1e-3);
}

describe('CoreML bridge on macOS (real CoreML)', () => {
  it('reports a fixed axis inside a range constraint as an NSRange of length 1 (Apple\'s documented reading)', async (context) => {
    const { bridge, compiled } = await probe(context);
    const model = await bridge.loadModel('probe', compiled, 'cpu');
    const x = model.inputs.find((feature) => feature.name === 'x')!;
    expect(x.shapeConstraint).toMatchObject({ kind: 'range' });
    expect(rangeReading(x)).toBe('nsrange');
    expect(sizeBounds(x)).toEqual([[1, 1], [16, 16], [2, 8], [1, 4]]);
    await bridge.unloadModel(model.id);
  });

  it('predicts y = 2x + 1 on every compute-unit setting, the second time into the output backing', async (context) => {
    const { bridge, compiled } = await probe(context);
    for (const units of COMPUTE_UNITS) {
      const model = await bridge.loadModel('probe', compiled, units);
      const x = input([1, 16, 4, 3]);
      const first = await bridge.predict(model.id, [x]);
      expectAffine(x.data as Float32Array, new Float32Array(first.y!.data));
      const second = await bridge.predict(model.id, [x], { y: first.y!.shape });
      expectAffine(x.data as Float32Array, new Float32Array(second.y!.data));
      expect(second.y!.shape).toEqual([1, 16, 4, 3]);
      await bridge.unloadModel(model.id);
    }
  });

  it('copies inputs before predict returns: detaching the buffer at once changes nothing', async (context) => {
    const { bridge, compiled } = await probe(context);
    const model = await bridge.loadModel('probe', compiled, 'cpu');
    const x = input([1, 16, 8, 4]);
    const expected = Float32Array.from(x.data as Float32Array);
    const pending = bridge.predict(model.id, [x]);
    const buffer = x.data.buffer as ArrayBuffer;
    structuredClone(buffer, { transfer: [buffer] }); // detaches it
    expect(x.data.byteLength).toBe(0);
    expectAffine(expected, new Float32Array((await pending).y!.data));
    await bridge.unloadModel(model.id);
  });

  it('refuses a shape whose byte length overflows instead of wrapping to a length that passes', async (context) => {
    const { bridge, compiled } = await probe(context);
    const model = await bridge.loadModel('probe', compiled, 'cpu');
    const huge: BridgeInput = { name: 'x', dataType: 'float32', shape: [2 ** 32, 2 ** 32, 4], data: new Float32Array(0) };
    expect(() => bridge.predict(model.id, [huge])).toThrow(/data length does not match its shape/);
    await bridge.unloadModel(model.id);
  });

  it('the compiled model states the specification version of its package (7: macOS 13.0)', async (context) => {
    const { compiled, packagePath } = await probe(context);
    expect(await packageRequirement(packagePath)).toEqual({ specificationVersion: 7, macos: '13.0' });
    expect(await packageRequirement(compiled)).toMatchObject({ specificationVersion: 7, macos: '13.0' });
  });

  it('CoreML refuses a specification version newer than it knows; the backend says so before CoreML is asked', async (context) => {
    darwinOnly(context);
    const bridge = loadCoreMLBridge();
    const tooNew = writeMlpackage(join(dir, 'future.mlpackage'), { specificationVersion: 99 });
    await expect(bridge.compileModel('future', tooNew, join(dir, 'future.mlmodelc'))).rejects.toThrow();
    const backend = new CoreMLBackend(bridge, { cacheDir: join(dir, 'cache') });
    const refusal = backend.load({ name: 'future', path: tooNew, weightBytes: 0 });
    // Up to macOS 15 the backend refuses it itself; a later major release gets the benefit of the doubt.
    if (Number(macosVersion()?.split('.')[0]) <= 15) await expect(refusal).rejects.toThrow(/needs macOS newer than 15\.0/);
    else await expect(refusal).rejects.toThrow();
  });

  it('the backend widens a one-head input to the 16 of the fixed axis and runs on the compile cache', async (context) => {
    darwinOnly(context);
    const backend = new CoreMLBackend(loadCoreMLBridge(), { cacheDir: join(dir, 'cache'), computeUnits: 'cpu' });
    const block = { name: 'probe', path: writeMlpackage(join(dir, 'probe.mlpackage')), weightBytes: 0 };
    const handle = await backend.load(block);
    const x = { dtype: 'float32' as const, dims: [1, 1, 2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) };
    const { y } = await backend.run(handle, { x });
    expect(y?.dims).toEqual([1, 16, 2, 3]);
    await backend.close();
    const again = new CoreMLBackend(loadCoreMLBridge(), { cacheDir: join(dir, 'cache') });
    await again.unload(await again.load(block));
    expect(again.cache.events).toMatchObject({ hits: 1, compiles: 0 });
  });

  it('a worker thread ended during predictions does not take the process down', (context) => {
    darwinOnly(context);
    const packagePath = writeMlpackage(join(dir, 'probe.mlpackage'));
    // The worker predicts in a loop; the main thread terminates it mid-flight, then exits normally.
    const script = `
      import { Worker } from 'node:worker_threads';
      const worker = new Worker(\`
        const { createRequire } = require('node:module');
        const bridge = createRequire(${JSON.stringify(join(ROOT, 'package.json'))})(${JSON.stringify(join(ROOT, 'build/Release/sora_coreml.node'))});
        (async () => {
          await bridge.compileModel('probe', ${JSON.stringify(packagePath)}, ${JSON.stringify(join(dir, 'w.mlmodelc'))});
          const model = await bridge.loadModel('probe', ${JSON.stringify(join(dir, 'w.mlmodelc'))}, 'cpu');
          const data = new Float32Array(16 * 8 * 4);
          require('node:worker_threads').parentPort.postMessage('loaded');
          for (;;) await Promise.all(Array.from({ length: 8 }, () => bridge.predict(model.id, [{ name: 'x', dataType: 'float32', shape: [1, 16, 8, 4], data }])));
        })();
      \`, { eval: true });
      worker.once('message', () => setTimeout(() => worker.terminate().then(() => console.log('survived')), 50));
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(run.stdout.trim(), run.stderr).toBe('survived');
    expect(run.status).toBe(0);
  });
});
