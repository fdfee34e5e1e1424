/**
 * Worker thread that owns ONNX Runtime sessions. onnxruntime-node's create() and run() are synchronous native
 * calls that freeze the calling thread (runtime-facts §2), so they happen here and never on the main thread.
 * Sessions cannot move between threads: a session stays in the worker that created it.
 *
 * The worker ends itself, on a 'close' message (see WorkerChannel.close in onnx-backend.ts): it must never be
 * terminated from outside while onnxruntime-node's native code runs in it.
 */
import { dirname } from 'node:path';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { errorMessage } from '../errors.js';
import { TENSOR_DTYPES, type BlockStats, type NamedTensors, type Tensor, type TensorData, type TensorDType } from './backend.js';
// Type-only: importing a value from the backend module would load it into every worker.
import type { ExecutionProvider } from './onnx-backend.js';
import { discardEntry, hasEntry, publishEntry, roomFor, temporaryEntry, touchEntry, WEIGHTS_FILE, type GraphCacheEntry } from './onnx-graph-cache.js';
import { disableOrtTelemetry } from './ort-telemetry.js';

export interface WorkerSessionOptions {
  readonly intraOpThreads?: number;
  readonly mmapWeights: boolean;
  readonly activationArena: boolean;
}

export interface WorkerData {
  /** ORT's own stderr logging; 'fatal' keeps it quiet (failures still arrive as exceptions). */
  readonly ortLogLevel: 'warning' | 'fatal';
  /**
   * Set up ORT's per-thread state (see warm()) before posting 'ready', with these options. For a worker started
   * early (onnx-worker-start.ts): the first block's load then takes milliseconds instead of tens (start-up time).
   */
  readonly warmUp?: WorkerSessionOptions;
}

/**
 * A run input: data (kept under `store` for later runs when given), or a tensor this worker already holds. Tensors
 * stay in the worker that computed or received them until the backend asks for them (take) or drops them.
 */
export type WorkerValue = { readonly tensor: Tensor; readonly store?: number } | { readonly resident: number };

export type WorkerRequest =
  | { type: 'warm'; id: number; options: WorkerSessionOptions }
  | { type: 'gc'; id: number }
  | { type: 'load'; id: number; path: string; provider: ExecutionProvider; options: WorkerSessionOptions; cache?: GraphCacheRequest }
  | {
      type: 'run';
      id: number;
      session: number;
      inputs: Record<string, WorkerValue>;
      /** Outputs to keep in this worker, under these ids. */
      keep: Record<string, number>;
      /** Held tensors this run is the last user of: dropped after it. */
      consume: number[];
    }
  /** Sends a held tensor to the backend: a copy, or the tensor itself (then this worker no longer holds it). */
  | { type: 'take'; id: number; resident: number; copy: boolean }
  | { type: 'drop'; id: number; residents: number[] }
  | { type: 'unload'; id: number; session: number };

/** An input or output as the graph declares it: element type, and fixed sizes or symbolic names per dimension. */
export interface GraphValue {
  readonly name: string;
  /** `float32`, `int64`…, or what ONNX Runtime calls a non-tensor value (`map`, `sequence`). */
  readonly type: string;
  readonly shape: readonly (number | string)[];
}

/** Keep the block's optimised graph in the graph cache (onnx-graph-cache.ts), or load it from there. */
export interface GraphCacheRequest {
  /** The block's entry (onnx-graph-cache.ts), named on the main thread. */
  readonly entry: GraphCacheEntry;
  readonly weightBytes: number;
}

/** hit: made from the cached graph; written: optimised and cached now; skipped: no room on disk; failed: see the log. */
export type GraphCacheOutcome = NonNullable<BlockStats['graphCache']>;

export interface LoadResult {
  readonly session: number;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputs: readonly GraphValue[];
  readonly outputs: readonly GraphValue[];
  readonly ms: number;
  /** Set when the requested provider failed and the session runs on CPU instead. */
  readonly fallbackReason?: string;
  readonly graphCache?: { readonly outcome: GraphCacheOutcome; readonly error?: string };
}

export interface RunResult {
  /** The outputs not kept. */
  readonly outputs: NamedTensors;
  /** The kept outputs' dtype and dims, by output name. */
  readonly kept: Record<string, Pick<Tensor, 'dtype' | 'dims'>>;
  readonly ms: number;
}

export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; message: string };

/** Asks the worker to exit; not answered (the channel waits for the worker's 'exit' event). */
export interface CloseRequest {
  readonly type: 'close';
}

/** Posted once, when ORT is loaded and the worker listens for requests. */
export interface ReadyMessage {
  readonly type: 'ready';
}

export type WorkerMessage = WorkerReply | ReadyMessage;

const port = parentPortOrThrow();
// The backend set it in the main thread before starting this worker; this only checks (see ort-telemetry.ts).
disableOrtTelemetry();
const { ortLogLevel, warmUp } = workerData as WorkerData;
ort.env.logLevel = ortLogLevel;

function parentPortOrThrow(): MessagePort {
  if (parentPort === null) throw new Error('onnx-worker must run in a worker thread');
  return parentPort;
}

const sessions = new Map<number, ort.InferenceSession>();
let nextSession = 1;
/** Tensors kept for later runs, by the backend's id. */
const residents = new Map<number, Tensor>();

port.on('message', (request: WorkerRequest | CloseRequest) => {
  // process.exit() in a worker stops this thread at this point, between two tasks, so never during a native ORT
  // call. A run or load whose native part has not started yet (ORT defers it with setImmediate) does not start.
  if (request.type === 'close') process.exit(0);
  void handle(request);
});

async function handle(request: WorkerRequest): Promise<void> {
  try {
    const { result, transfer } = await dispatch(request);
    port.postMessage({ id: request.id, ok: true, result } satisfies WorkerReply, transfer);
  } catch (error) {
    const message = errorMessage(error).replace(/\s*\n\s*/g, ' ').trim();
    port.postMessage({ id: request.id, ok: false, message } satisfies WorkerReply);
  }
  if (request.type === 'run') setImmediate(collectRunInputs);
}

/**
 * A run's input buffers are dead once it has replied, but V8 frees buffers only when its own heuristics call for a
 * collection, which under a memory budget left tens of MiB of them resident. A scavenge (~1 ms: they are young)
 * frees them. `gc` exists only where the process exposed it for a memory budget (enableGarbageCollection).
 */
function collectRunInputs(): void {
  (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc?.({ type: 'minor' });
}

async function dispatch(request: WorkerRequest): Promise<{ result: unknown; transfer: ArrayBuffer[] }> {
  switch (request.type) {
    case 'warm':
      await warm(request.options);
      return { result: null, transfer: [] };
    case 'gc':
      (globalThis as { gc?: () => void }).gc?.(); // see collectRunInputs
      return { result: null, transfer: [] };
    case 'load':
      return { result: await load(request.path, request.provider, request.options, request.cache), transfer: [] };
    case 'run':
      return run(sessionOf(request.session), request);
    case 'take':
      return take(request.resident, request.copy);
    case 'drop':
      for (const resident of request.residents) residents.delete(resident);
      return { result: null, transfer: [] };
    case 'unload':
      await sessionOf(request.session).release();
      sessions.delete(request.session);
      return { result: null, transfer: [] };
  }
}

function sessionOf(id: number): ort.InferenceSession {
  const session = sessions.get(id);
  if (session === undefined) throw new Error(`no session ${id} in this worker`);
  return session;
}

type CreatedSession = { session: ort.InferenceSession; fallbackReason?: string; graphCache?: LoadResult['graphCache'] };

/**
 * From the cached optimised graph when there is one (optimisation off: it was done when the entry was written), else
 * optimised from the block's own graph and written to the cache on the way. A cache that cannot be written costs
 * one more session creation, never the load.
 */
async function createCachedSession(
  path: string,
  provider: ExecutionProvider,
  options: WorkerSessionOptions,
  cache: GraphCacheRequest,
): Promise<CreatedSession> {
  const { entry } = cache;
  const base = sessionOptions(options, provider);
  // Without the cache, from the block's own graph, saying why.
  const afresh = async (outcome: GraphCacheOutcome, error?: unknown): Promise<CreatedSession> => ({
    ...(await createSession(path, provider, options)),
    graphCache: { outcome, ...(error === undefined ? {} : { error: errorMessage(error) }) },
  });
  if (hasEntry(entry)) {
    try {
      const session = await ort.InferenceSession.create(entry.graph, { ...base, graphOptimizationLevel: 'disabled' });
      await touchEntry(entry);
      return { session, graphCache: { outcome: 'hit' } };
    } catch (error) {
      return afresh('failed', error);
    }
  }
  if (!(await roomFor(dirname(entry.dir), cache.weightBytes).catch(() => false))) return afresh('skipped');
  const written = await temporaryEntry(entry);
  try {
    const session = await ort.InferenceSession.create(path, {
      ...base,
      optimizedModelFilePath: written.graph,
      extra: {
        ...base.extra,
        'session.optimized_model_external_initializers_file_name': WEIGHTS_FILE,
        'session.optimized_model_external_initializers_min_size_in_bytes': '1024',
      },
    });
    await publishEntry(written, entry);
    return { session, graphCache: { outcome: 'written' } };
  } catch (error) {
    await discardEntry(written);
    return afresh('failed', error);
  }
}

function sessionOptions(options: WorkerSessionOptions, provider: ExecutionProvider): ort.InferenceSession.SessionOptions {
  // Spinning intra-op threads keep burning cores after a run; with several sessions (and a loader) sharing
  // the cores that steals time from whoever works next.
  const extra: Record<string, string> = { 'session.intra_op.allow_spinning': '0' };
  // Without prepacking, ORT maps external weight files instead of copying them: load takes milliseconds and
  // the weights stay reclaimable page cache (runtime-facts §4).
  if (options.mmapWeights) extra['session.disable_prepacking'] = '1';
  return {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    enableCpuMemArena: options.activationArena,
    logSeverityLevel: ortLogLevel === 'fatal' ? 4 : 2,
    ...(options.intraOpThreads === undefined ? {} : { intraOpNumThreads: options.intraOpThreads }),
    extra,
  };
}

async function createSession(
  path: string,
  provider: ExecutionProvider,
  options: WorkerSessionOptions,
): Promise<CreatedSession> {
  if (provider === 'cpu') return { session: await ort.InferenceSession.create(path, sessionOptions(options, 'cpu')) };
  try {
    return { session: await ort.InferenceSession.create(path, sessionOptions(options, provider)) };
  } catch (error) {
    // ORT does not fall back to another provider by itself (runtime-facts §1). If CPU fails as well, the
    // model file is at fault and that error is the one reported.
    const session = await ort.InferenceSession.create(path, sessionOptions(options, 'cpu'));
    return { session, fallbackReason: errorMessage(error) };
  }
}

async function load(path: string, provider: ExecutionProvider, options: WorkerSessionOptions, cache?: GraphCacheRequest): Promise<LoadResult> {
  const start = performance.now();
  const { session, fallbackReason, graphCache } =
    cache === undefined ? await createSession(path, provider, options) : await createCachedSession(path, provider, options, cache);
  const ms = performance.now() - start;
  const id = nextSession++;
  sessions.set(id, session);
  return {
    session: id,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputs: session.inputMetadata.map(graphValue),
    outputs: session.outputMetadata.map(graphValue),
    ms,
    ...(fallbackReason === undefined ? {} : { fallbackReason }),
    ...(graphCache === undefined ? {} : { graphCache }),
  };
}

function graphValue(value: ort.InferenceSession.ValueMetadata): GraphValue {
  if (!value.isTensor) return { name: value.name, type: 'non-tensor', shape: [] };
  // A dimension without a name or size comes as -1 or ''; both are symbolic.
  return { name: value.name, type: value.type, shape: value.shape.map((dim) => (typeof dim === 'number' && dim < 0 ? '?' : dim)) };
}

/**
 * A one-node graph (Identity, float [1]; 83 bytes written by onnx.helper). Creating a session of it sets up what
 * ORT's first session in a thread sets up (26 MiB here: its environment, allocators, kernel registry), so that this
 * memory is in use before a memory budget admits the first real load, instead of appearing during it.
 */
const WARM_UP_MODEL = 'CAgSDW9uZGV2aWNlLXNvcmE6OgoQCgF4EgF5IghJZGVudGl0eRIEd2FybVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEA0=';

async function warm(options: WorkerSessionOptions): Promise<void> {
  const session = await ort.InferenceSession.create(Buffer.from(WARM_UP_MODEL, 'base64'), sessionOptions(options, 'cpu'));
  await session.release();
}

type RunRequest = Extract<WorkerRequest, { type: 'run' }>;

function take(id: number, copy: boolean): { result: Tensor; transfer: ArrayBuffer[] } {
  const held = residentOf(id);
  if (!copy) residents.delete(id);
  const data = copy ? held.data.slice() : held.data;
  return { result: { ...held, data }, transfer: data.buffer instanceof ArrayBuffer ? [data.buffer] : [] };
}

function residentOf(id: number): Tensor {
  const held = residents.get(id);
  if (held === undefined) throw new Error(`no resident tensor ${id} in this worker`);
  return held;
}

/** Inline tensors to be kept are stored before the run, so that a failed run leaves them as a successful one would. */
function feedsOf(inputs: RunRequest['inputs']): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, value] of Object.entries(inputs)) {
    let input: Tensor;
    if ('resident' in value) {
      input = residentOf(value.resident);
    } else {
      input = value.tensor;
      if (value.store !== undefined) residents.set(value.store, input);
    }
    // run() rejects SharedArrayBuffer-backed data (runtime-facts §2); slice() copies into a plain buffer.
    const data = input.data.buffer instanceof SharedArrayBuffer ? input.data.slice() : input.data;
    feeds[name] = new ort.Tensor(input.dtype, data as Float32Array, input.dims);
  }
  return feeds;
}

async function run(session: ort.InferenceSession, request: RunRequest): Promise<{ result: RunResult; transfer: ArrayBuffer[] }> {
  let results: ort.InferenceSession.OnnxValueMapType;
  let ms: number;
  try {
    const feeds = feedsOf(request.inputs);
    const start = performance.now();
    results = await session.run(feeds);
    ms = performance.now() - start;
  } finally {
    for (const resident of request.consume) residents.delete(resident);
  }

  const outputs: Record<string, Tensor> = {};
  const kept: RunResult['kept'] = {};
  const transfer = new Set<ArrayBuffer>();
  for (const [name, value] of Object.entries(results)) {
    if (!(TENSOR_DTYPES as readonly string[]).includes(value.type)) throw new Error(`output "${name}" has unsupported type ${value.type}`);
    const output: Tensor = { dtype: value.type as TensorDType, dims: value.dims, data: value.data as TensorData };
    const keepAs = request.keep[name];
    if (keepAs !== undefined) {
      residents.set(keepAs, output);
      kept[name] = { dtype: output.dtype, dims: output.dims };
      continue;
    }
    outputs[name] = output;
    if (output.data.buffer instanceof ArrayBuffer) transfer.add(output.data.buffer);
  }
  return { result: { outputs, kept, ms }, transfer: [...transfer] };
}

// Last, so that the module is fully evaluated (WARM_UP_MODEL above) when the warm-up runs; requests that come
// meanwhile are handled as usual. A failed warm-up costs only its time: the first real load reports what is wrong.
// No top-level await: the tests run this file as CommonJS (startWorker).
const ready = (): void => port.postMessage({ type: 'ready' } satisfies ReadyMessage);
if (warmUp === undefined) ready();
else void warm(warmUp).catch(() => undefined).then(ready);
