import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../src/logging.js';
import { hostOutputs, type Backend, type BlockHandle } from '../src/runtime/backend.js';
import { OnnxBackend, type OnnxBackendOptions } from '../src/runtime/onnx-backend.js';
import { adoptWorker, prestartWorkers } from '../src/runtime/onnx-worker-start.js';
import { float16BitsToFloat32, float32ToFloat16Bits, fromNumbers, tensor } from '../src/runtime/tensor.js';
import { expectSoraError } from './helpers/expect-error.js';
import { tempDir } from './helpers/model-folder.js';
import { externalInitializer, initializer, matmulChain, modelBytes, node, writeModel } from './helpers/onnx-graphs.js';

let dir: string;
const backends: Backend[] = [];

function backend(options: OnnxBackendOptions = {}): OnnxBackend {
  const created = new OnnxBackend({ logger: pino({ level: 'silent' }), ...options });
  backends.push(created);
  return created;
}

/** A pino logger writing JSON lines into an array, to assert on real log output. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, stream), lines };
}

function source(name: string, inputs?: string[], outputs?: string[]) {
  return { name, path: join(dir, `${name}.onnx`), weightBytes: 0, inputs, outputs };
}

beforeAll(async () => {
  dir = await tempDir();
  // y = x + c for each dtype, with a constant that makes the result easy to predict.
  const add = (dtype: 'float32' | 'float16' | 'int64' | 'int32', c: Float32Array | Uint16Array | BigInt64Array | Int32Array) =>
    writeModel(join(dir, `add-${dtype}.onnx`), {
      nodes: [node('Add', ['x', 'c'], ['y'])],
      inputs: [{ name: 'x', dtype, shape: ['n'] }],
      outputs: [{ name: 'y', dtype, shape: ['n'] }],
      initializers: [initializer('c', dtype, [1], c)],
    });
  await add('float32', new Float32Array([0.25]));
  await copyFile(join(dir, 'add-float32.onnx'), join(dir, 'add-float32-twin.onnx'));
  await add('float16', float32ToFloat16Bits([0.5]));
  await add('int64', new BigInt64Array([2n ** 60n]));
  await add('int32', new Int32Array([-7]));

  // Two outputs of different dtypes from one run.
  await writeModel(join(dir, 'two-outputs.onnx'), {
    nodes: [node('Relu', ['x'], ['relu']), node('Shape', ['x'], ['shape'])],
    inputs: [{ name: 'x', dtype: 'float32', shape: [2, 'n'] }],
    outputs: [
      { name: 'relu', dtype: 'float32', shape: [2, 'n'] },
      { name: 'shape', dtype: 'int64', shape: [2] },
    ],
  });

  // y = x · W with W in an external data file, as the exporter writes weights.
  const weights = Float32Array.from({ length: 16 }, (_, i) => i / 8);
  await writeFile(join(dir, 'matmul.data'), weights);
  await writeModel(join(dir, 'matmul-external.onnx'), {
    nodes: [node('MatMul', ['x', 'w'], ['y'])],
    inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 4] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 4] }],
    initializers: [externalInitializer('w', [4, 4], 'matmul.data', 0, weights.byteLength)],
  });

  await writeModel(join(dir, 'slow.onnx'), matmulChain(48, 1024));
  await writeFile(join(dir, 'corrupt.onnx'), modelBytes(matmulChain(1, 4)).slice(0, 20));
});

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('OnnxBackend runs real sessions in worker threads', () => {
  it('float32: returns the right numbers and records stats', async () => {
    const b = backend();
    const handle = await b.load(source('add-float32', ['x'], ['y']));
    const out = hostOutputs(await b.run(handle, { x: fromNumbers('float32', [3], [1, -2, 3.5]) }));
    expect(out.y?.dtype).toBe('float32');
    expect(out.y?.dims).toEqual([3]);
    expect(out.y?.data).toBeInstanceOf(Float32Array);
    expect([...(out.y?.data as Float32Array)]).toEqual([1.25, -1.75, 3.75]);
    const [stats] = b.stats();
    expect(stats?.name).toBe('add-float32');
    expect(stats?.loadMs).toBeGreaterThan(0);
    expect(stats?.runMs).toHaveLength(1);
    expect(b.device).toBe('cpu');
  });

  it('float16: takes and returns raw half bits', async () => {
    const b = backend();
    const handle = await b.load(source('add-float16'));
    const out = hostOutputs(await b.run(handle, { x: fromNumbers('float16', [4], [1, -0.25, 1000, 65504]) }));
    expect(out.y?.dtype).toBe('float16');
    expect(out.y?.data).toBeInstanceOf(Uint16Array);
    // 65504 + 0.5 rounds back to 65504, the largest finite half.
    expect([...float16BitsToFloat32(out.y?.data as Uint16Array)]).toEqual([1.5, 0.25, 1000.5, 65504]);
  });

  it('int64: keeps values beyond 2^53 exact', async () => {
    const b = backend();
    const handle = await b.load(source('add-int64'));
    const out = hostOutputs(await b.run(handle, { x: tensor('int64', [2], new BigInt64Array([1n, -3n])) }));
    expect(out.y?.dtype).toBe('int64');
    expect([...(out.y?.data as BigInt64Array)]).toEqual([2n ** 60n + 1n, 2n ** 60n - 3n]);
  });

  it('int32', async () => {
    const b = backend();
    const handle = await b.load(source('add-int32'));
    const out = hostOutputs(await b.run(handle, { x: fromNumbers('int32', [2], [7, 100]) }));
    expect([...(out.y?.data as Int32Array)]).toEqual([0, 93]);
  });

  it('returns several outputs of different dtypes', async () => {
    const b = backend();
    const handle = await b.load(source('two-outputs', ['x'], ['relu', 'shape']));
    const out = hostOutputs(await b.run(handle, { x: fromNumbers('float32', [2, 2], [-1, 2, 3, -4]) }));
    expect([...(out.relu?.data as Float32Array)]).toEqual([0, 2, 3, 0]);
    expect([...(out.shape?.data as BigInt64Array)]).toEqual([2n, 2n]);
  });

  it('mapped external weights give the same result as copied ones', async () => {
    const x = [1, 0, 0, 0, 0, 1, 1, 0];
    const results = [];
    for (const mmapWeights of [false, true]) {
      const b = backend({ mmapWeights });
      const handle = await b.load(source('matmul-external'));
      results.push([...(hostOutputs(await b.run(handle, { x: fromNumbers('float32', [2, 4], x) })).y?.data as Float32Array)]);
    }
    // Row 0 of W, then rows 1 + 2 of W (W[i][j] = (4i + j) / 8).
    expect(results[0]).toEqual([0, 0.125, 0.25, 0.375, 1.5, 1.75, 2, 2.25]);
    expect(results[1]).toEqual(results[0]);
  });

  it('transferInputs moves the input buffer to the worker (the caller’s copy is detached)', async () => {
    const b = backend();
    const handle = await b.load(source('add-float32'));
    const kept = fromNumbers('float32', [2], [1, 2]);
    await b.run(handle, { x: kept });
    expect(kept.data.buffer.byteLength).toBe(8);
    expect([...(kept.data as Float32Array)]).toEqual([1, 2]);

    const moved = fromNumbers('float32', [2], [1, 2]);
    const out = hostOutputs(await b.run(handle, { x: moved }, { transferInputs: true }));
    expect(moved.data.buffer.byteLength).toBe(0);
    expect([...(out.y?.data as Float32Array)]).toEqual([1.25, 2.25]);
  });

  it('accepts a view into a larger buffer and SharedArrayBuffer-backed data', async () => {
    const b = backend();
    const handle = await b.load(source('add-float32'));
    const view = new Float32Array(new Float32Array([9, 1, 2, 9]).buffer, 4, 2);
    expect([...(hostOutputs(await b.run(handle, { x: tensor('float32', [2], view) })).y?.data as Float32Array)]).toEqual([1.25, 2.25]);
    const shared = new Float32Array(new SharedArrayBuffer(8));
    shared.set([3, 4]);
    expect([...(hostOutputs(await b.run(handle, { x: tensor('float32', [2], shared) }, { transferInputs: true })).y?.data as Float32Array)]).toEqual([
      3.25, 4.25,
    ]);
  });

  it('keeps the main thread responsive while a block runs (a 10 ms timer keeps firing)', async () => {
    const b = backend({ intraOpThreads: 1 });
    const handle = await b.load(source('slow'));
    const x = fromNumbers('float32', [1024, 1024], Array.from({ length: 1024 * 1024 }, (_, i) => ((i % 97) - 48) / 5000));
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 10);
    const start = performance.now();
    await b.run(handle, { x }, { transferInputs: true });
    const end = performance.now();
    clearInterval(timer);

    const duration = end - start;
    expect(duration).toBeGreaterThanOrEqual(500);
    // On the main thread the native call would freeze the event loop: zero ticks, one gap as long as the run.
    const gaps = [ticks[0]! - start, ...ticks.slice(1).map((t, i) => t - ticks[i]!), end - ticks.at(-1)!];
    expect(ticks.length).toBeGreaterThanOrEqual((duration / 10) * 0.5);
    expect(Math.max(...gaps)).toBeLessThan(100);
  });

  it('loads a block while another block runs (the load lands on the idle worker)', async () => {
    const b = backend({ intraOpThreads: 1 });
    const slow = await b.load(source('slow'));
    const x = fromNumbers('float32', [1024, 1024], new Float32Array(1024 * 1024));
    let runDone = 0;
    const running = b.run(slow, { x }, { transferInputs: true }).then(() => (runDone = performance.now()));
    const loaded = await b.load(source('add-float32'));
    const loadDone = performance.now();
    await running;
    expect(loadDone).toBeLessThan(runDone);
    expect([...(hostOutputs(await b.run(loaded, { x: fromNumbers('float32', [1], [1]) })).y?.data as Float32Array)]).toEqual([1.25]);
  });
});

describe('OnnxBackend with workers started early (prestartWorkers)', () => {
  it('adopts them, ready or still starting, and runs on them', async () => {
    prestartWorkers({ ortLogLevel: 'fatal' }, 2);
    await new Promise((resolve) => setTimeout(resolve, 50)); // one may be ready by now, the other not: either is fine
    const b = backend({ workers: 2 });
    expect(adoptWorker({ ortLogLevel: 'fatal' })).toBeUndefined(); // both taken by the backend
    const [first, second] = await Promise.all([b.load(source('add-float32')), b.load(source('add-int32'))]);
    const sum = hostOutputs(await b.run(first, { x: fromNumbers('float32', [2], [1, 2]) }));
    expect([...(sum.y?.data as Float32Array)]).toEqual([1.25, 2.25]);
    const difference = hostOutputs(await b.run(second, { x: fromNumbers('int32', [1], [7]) }));
    expect([...(difference.y?.data as Int32Array)]).toEqual([0]);
  });

  it('leaves workers started for another ORT log level to their own backend', async () => {
    prestartWorkers({ ortLogLevel: 'warning' }, 1);
    backend({ workers: 1 }); // a silent logger: 'fatal' workers, started afresh
    const left = adoptWorker({ ortLogLevel: 'warning' });
    expect(left).toBeDefined();
    // Asked to exit, as WorkerChannel.close does: terminate() during ORT's initialisation would abort the process.
    const exited = once(left!.worker, 'exit');
    left!.worker.ref();
    left!.worker.postMessage({ type: 'close' });
    await exited;
  });
});

describe('OnnxBackend execution providers', () => {
  for (const provider of ['cuda', 'coreml'] as const) {
    it(`${provider} unavailable here → falls back to cpu with a warning`, async () => {
      const { logger, lines } = capturingLogger();
      const b = backend({ executionProvider: provider, logger });
      expect(b.device).toBe(provider);
      const handle = await b.load(source('add-float32'));
      expect(b.device).toBe('cpu');
      expect([...(hostOutputs(await b.run(handle, { x: fromNumbers('float32', [1], [1]) })).y?.data as Float32Array)]).toEqual([1.25]);
      const warnings = lines.filter((line) => line.level === 40);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.msg).toBe(`execution provider ${provider} is unavailable; using cpu`);
      expect(warnings[0]?.requested).toBe(provider);
      // Later loads go straight to cpu: no second warning.
      await b.load(source('add-int32'));
      expect(lines.filter((line) => line.level === 40)).toHaveLength(1);
    });
  }
});

describe('OnnxBackend errors', () => {
  it('a corrupt ONNX file → MODEL naming the file and the block', async () => {
    await expectSoraError(backend().load(source('corrupt')), 'MODEL', join(dir, 'corrupt.onnx'), 'cannot load block corrupt');
  });

  it('a corrupt ONNX file with cuda requested still reports the model, not the provider', async () => {
    await expectSoraError(backend({ executionProvider: 'cuda' }).load(source('corrupt')), 'MODEL', 'Protobuf parsing failed');
  });

  it('a missing graph file → MODEL naming the file', async () => {
    await expectSoraError(backend().load(source('absent')), 'MODEL', join(dir, 'absent.onnx'), 'does not exist');
  });

  it('graph inputs/outputs that differ from the contract → MODEL naming the block and the names', async () => {
    const b = backend();
    await expectSoraError(
      b.load(source('add-float32', ['hidden_states'], ['y'])),
      'MODEL',
      join(dir, 'add-float32.onnx'),
      'block add-float32: graph inputs do not match the contract: missing "hidden_states", unexpected "x"',
    );
    await expectSoraError(
      b.load(source('two-outputs', ['x'], ['relu', 'shape', 'yNull'])),
      'MODEL',
      'block two-outputs: graph outputs do not match the contract: missing "yNull"',
    );
  });

  it('a failing run → BACKEND naming the block', async () => {
    const b = backend();
    const handle = await b.load(source('add-float32'));
    await expectSoraError(b.run(handle, { x: fromNumbers('float32', [1, 2], [1, 2]) }), 'BACKEND', 'block add-float32: run failed:');
  });

  it('blocks naming one graph file share one session until the last of them is unloaded', async () => {
    const b = backend();
    const path = join(dir, 'add-float32.onnx');
    // Loaded at once, as a provider preloading a block pair's ST and TDTM names does.
    const [st, tdtm] = await Promise.all([
      b.load({ name: 'stdit3_ST_0', path, weightBytes: 0 }),
      b.load({ name: 'stdit3_TDTM_0', path, weightBytes: 0 }),
    ]);
    const loads = b.stats().map((stats) => stats.loadMs);
    expect(loads.filter((ms) => ms > 0)).toHaveLength(1);
    expect(loads.filter((ms) => ms === 0)).toHaveLength(1);
    const x = fromNumbers('float32', [1], [1]);
    await b.unload(st);
    expect([...(hostOutputs(await b.run(tdtm, { x })).y!.data as Float32Array)]).toEqual([1.25]);
    await b.unload(tdtm);
    await expectSoraError(b.run(tdtm, { x }), 'BACKEND', 'stdit3_TDTM_0 is not loaded');
    // The session went with its last block: a new load opens it afresh.
    await b.load({ name: 'stdit3_ST_0', path, weightBytes: 0 });
    expect(b.stats().at(-1)!.loadMs).toBeGreaterThan(0);
  });

  it('a block of a shared graph whose names differ from its own contract is refused; the other keeps the session', async () => {
    const b = backend();
    const path = join(dir, 'add-float32.onnx');
    const good = await b.load({ name: 'a', path, weightBytes: 0, inputs: ['x'], outputs: ['y'] });
    await expectSoraError(b.load({ name: 'b', path, weightBytes: 0, inputs: ['z'], outputs: ['y'] }), 'MODEL', 'missing "z"');
    expect([...(hostOutputs(await b.run(good, { x: fromNumbers('float32', [1], [2]) })).y!.data as Float32Array)]).toEqual([2.25]);
  });

  it('running an unloaded block → BACKEND', async () => {
    const b = backend();
    const handle = await b.load(source('add-float32'));
    await b.unload(handle);
    await expectSoraError(b.run(handle, { x: fromNumbers('float32', [1], [1]) }), 'BACKEND', 'add-float32 is not loaded');
  });

  it('a closed backend refuses work', async () => {
    const b = backend();
    await b.load(source('add-float32'));
    await b.close();
    await expectSoraError(b.load(source('add-float32')), 'BACKEND', 'closed');
  });
});

describe('OnnxBackend residency: tensors stay in the worker threads', () => {
  const F32 = 4;

  /** Two sessions of y = x + 0.25 (two files: blocks of one file share a session): the second lands on the other worker. */
  async function twoWorkers(): Promise<{ b: OnnxBackend; first: BlockHandle; second: BlockHandle }> {
    const b = backend();
    const first = await b.load(source('add-float32'));
    const second = await b.load(source('add-float32-twin'));
    return { b, first, second };
  }

  it('a kept output is the next run’s input: same numbers, nothing back to the host until the last run', async () => {
    const { b, first, second } = await twoWorkers();
    const x = fromNumbers('float32', [3], [1, 2, 3]);
    const a = await b.run(first, { x }, { keep: ['y'] });
    expect(a.y).toEqual({ resident: expect.any(Number), dtype: 'float32', dims: [3] });
    const c = await b.run(second, { x: a.y! }, { keep: ['y'], consume: ['x'] });
    const d = hostOutputs(await b.run(first, { x: c.y! }, { consume: ['x'] }));
    expect([...(d.y!.data as Float32Array)]).toEqual([1.75, 2.75, 3.75]);
    // In once, out once; each hand-over between the two workers moved the tensor without a copy.
    expect(b.transfers()).toEqual({ toRuntime: 3 * F32, toHost: 3 * F32, withinRuntime: 2 * 3 * F32, copiedWithinRuntime: 0 });
    expect(b.residentTensors()).toEqual({ count: 0, bytes: 0 });
  });

  it('an uploaded tensor used in both workers is sent once and copied once; fetch and release', async () => {
    const { b, first, second } = await twoWorkers();
    const data = new Float32Array([4, 5]);
    const shared = await b.upload(tensor('float32', [2], data), { transfer: true });
    for (let i = 0; i < 2; i++) {
      expect([...(hostOutputs(await b.run(first, { x: shared })).y!.data as Float32Array)]).toEqual([4.25, 5.25]);
      expect(data.byteLength).toBe(0); // handed over to the worker, not copied
      expect([...(hostOutputs(await b.run(second, { x: shared })).y!.data as Float32Array)]).toEqual([4.25, 5.25]);
    }
    expect([...((await b.fetch(shared)).data as Float32Array)]).toEqual([4, 5]);
    expect(b.transfers()).toEqual({ toRuntime: 2 * F32, toHost: 5 * 2 * F32, withinRuntime: 2 * F32, copiedWithinRuntime: 2 * F32 });
    expect(b.residentTensors()).toEqual({ count: 1, bytes: 2 * F32 });
    await b.release([shared]);
    await b.release([shared]); // twice: ignored
    expect(b.residentTensors()).toEqual({ count: 0, bytes: 0 });
    await expectSoraError(b.run(first, { x: shared }), 'INTERNAL', `resident tensor ${shared.resident} was released`);
  });

  it('without transfer the upload copies: the caller may change its buffer afterwards', async () => {
    const b = backend();
    const handle = await b.load(source('add-float32'));
    const data = new Float32Array([1]);
    const uploaded = await b.upload(tensor('float32', [1], data));
    data[0] = 100;
    expect([...(hostOutputs(await b.run(handle, { x: uploaded })).y!.data as Float32Array)]).toEqual([1.25]);
  });

  it('a run that fails still drops what it consumed', async () => {
    const b = backend();
    const handle = await b.load(source('add-float32'));
    const bad = await b.upload(fromNumbers('float32', [1, 2], [1, 2]));
    await expectSoraError(b.run(handle, { x: bad }, { consume: ['x'] }), 'BACKEND', 'run failed');
    expect(b.residentTensors()).toEqual({ count: 0, bytes: 0 });
  });
});

describe('OnnxBackend close', () => {
  // Stopping a worker from outside while onnxruntime-node's native code runs in it aborts the whole process
  // ("terminate called after throwing an instance of 'Napi::Error'"), so this runs in a child process.
  it.skipIf(process.platform === 'win32')(
    'stops workers that are inside a native ORT call or still loading ORT, without aborting the process',
    async () => {
      const script = fileURLToPath(new URL('./fixtures/scripts/close-during-native-call.ts', import.meta.url));
      const child = spawn(process.execPath, ['--import', 'tsx', script, join(dir, 'add-float32.onnx'), dir], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 60_000,
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
      expect({ code, signal, output }).toEqual({
        code: 0,
        signal: null,
        output: 'in-flight load: the ONNX Runtime backend is closed\nclosed\n',
      });
    },
  );
});
