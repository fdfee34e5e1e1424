/**
 * The ONNX Runtime backend. Sessions live in a small pool of worker threads (default 2), never on the main
 * thread, because onnxruntime-node blocks the thread that calls create() or run() (runtime-facts §2).
 *
 * Why a pool of long-lived workers rather than one worker, or one worker per session:
 * - one worker serialises everything: loading block i+1 could never overlap running block i (CI-DL needs that);
 * - a worker per session pays thread start-up and ORT environment setup on every load, and CI-DL loads and
 *   unloads blocks all the time;
 * - with a pool, a load goes to the worker with the least queued work, so while worker A runs block i, block
 *   i+1 is created on idle worker B, then runs there while A loads i+2. A session stays in the worker that
 *   created it (sessions cannot move between threads).
 * Workers are unref'd while idle so a forgotten close() does not keep the process alive; while they start (load ORT)
 * and while requests are pending they are ref'd, so that the process does not exit under them (see
 * WorkerChannel.close for why a worker must not be stopped from outside at those times).
 */
import { access } from 'node:fs/promises';
import type { Worker } from 'node:worker_threads';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';
import { createLogger, type Logger } from '../logging.js';
import { nameMismatch } from '../model/contract.js';
import {
  isResident,
  tensorByteLength,
  type Backend,
  type BlockHandle,
  type BlockSource,
  type BlockStats,
  type NamedTensors,
  type ResidentTensor,
  type RunInputs,
  type RunOptions,
  type RunOutputs,
  type Tensor,
  type TensorData,
  type TensorDType,
  type TransferCounts,
} from './backend.js';
import type {
  CloseRequest,
  GraphValue,
  LoadResult,
  RunResult,
  WorkerData,
  WorkerMessage,
  WorkerReply,
  WorkerRequest,
  WorkerSessionOptions,
  WorkerValue,
} from './onnx-worker.js';
import { entryFiles, graphCacheEntry, ortVersion, type GraphCacheEntry } from './onnx-graph-cache.js';
import { adoptWorker, startWorker } from './onnx-worker-start.js';

import type { ExecutionProvider } from './backend-kinds.js';

export { EXECUTION_PROVIDERS, type ExecutionProvider } from './backend-kinds.js';

export interface OnnxBackendOptions {
  /** Requested execution provider (default cpu); falls back to cpu, with a warning, when it cannot be used. */
  readonly executionProvider?: ExecutionProvider;
  /** Worker threads that hold sessions (default 2, so a load can overlap a run). */
  readonly workers?: number;
  /** ORT intra-op threads per session (default: ORT's choice, one per physical core). */
  readonly intraOpThreads?: number;
  /**
   * Map external weight files instead of copying and prepacking them: loads take milliseconds and weights stay
   * reclaimable page cache; runs are about 5–20 % slower (runtime-facts §4). Default false.
   */
  readonly mmapWeights?: boolean;
  /**
   * Keep each session's arena of activation buffers between runs (default true). Off, a loaded block holds only its
   * weights: with the arena, every resident block keeps its largest activations (about 3× its weights for a
   * small STDiT block), so a memory-budgeted scheduler turns it off.
   */
  readonly activationArena?: boolean;
  /**
   * Keep each block's optimised graph in this folder and make later sessions from it (onnx-graph-cache.ts); blocks
   * whose manifest gives no sha256 are not cached. Off by default: an entry copies the block's weights.
   */
  readonly graphCacheDir?: string;
  readonly logger?: Logger;
}

type Reply<T> = { ok: true; result: T } | { ok: false; message: string };
// The channel adds the id; distributive so each request type keeps its own fields.
type WithoutId<R> = R extends unknown ? Omit<R, 'id'> : never;
type Request = WithoutId<WorkerRequest>;

interface Pending {
  resolve(reply: Reply<unknown>): void;
  reject(error: SoraError): void;
}

/** One worker thread and its in-flight requests. */
class WorkerChannel {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #exited: Promise<void>;
  #nextId = 1;
  #failure: SoraError | undefined;
  /** Whether the worker has loaded ORT and listens (its 'ready' message came). */
  #ready = false;
  #closing = false;
  #hasExited = false;
  /** Sessions living in this worker (including loads in flight). */
  sessions = 0;

  constructor(workerData: WorkerData) {
    const adopted = adoptWorker(workerData);
    this.#worker = adopted?.worker ?? startWorker(workerData);
    this.#ready = adopted?.ready ?? false;
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.on('message', (message: WorkerMessage) => {
      if ('type' in message) {
        this.#ready = true;
        this.#updateRef();
      } else {
        this.#settle(message);
      }
    });
    this.#worker.on('error', (error) => {
      this.#fail(new SoraError('BACKEND', `ONNX Runtime worker failed: ${errorMessage(error)}`, { cause: error }));
    });
    this.#worker.on('exit', (code) => {
      this.#hasExited = true;
      this.#fail(new SoraError('BACKEND', `ONNX Runtime worker exited (code ${code})`));
    });
  }

  /** Requests queued in this worker. */
  get queued(): number {
    return this.#pending.size;
  }

  request<T>(message: Request, transfer: readonly ArrayBuffer[] = []): Promise<Reply<T>> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise<Reply<T>>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (reply: Reply<unknown>) => void, reject });
      this.#updateRef();
      this.#worker.postMessage({ ...message, id }, [...transfer]);
    });
  }

  /**
   * Stops the worker once it is between two tasks; pending requests are rejected at once.
   *
   * Not with worker.terminate(): that stops the worker's JavaScript wherever it is, and when the thread is inside
   * onnxruntime-node's native code (a create() or run() in progress, or the binding's module initialisation while
   * the worker starts) the binding's next N-API call fails. The binding is built with C++ exceptions: it throws a
   * Napi::Error, cannot turn it into a JS exception in a terminating thread, throws again from its catch handler,
   * and std::terminate aborts the whole process ("terminate called after throwing an instance of 'Napi::Error'").
   * So the worker is asked to exit, which it does from JavaScript, i.e. after it has started and after the native
   * call in progress has returned. That wait is no longer than terminate()'s: it cannot interrupt a native call
   * either, only settle when the call returns.
   */
  async close(): Promise<void> {
    this.#fail(new SoraError('BACKEND', 'the ONNX Runtime backend is closed'));
    if (!this.#closing && !this.#hasExited) {
      this.#closing = true;
      this.#updateRef(); // the process waits for the exit
      this.#worker.postMessage({ type: 'close' } satisfies CloseRequest);
    }
    await this.#exited;
  }

  #settle(reply: WorkerReply): void {
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    this.#updateRef();
    pending.resolve(reply);
  }

  /** Ref'd while starting, while requests are pending and while closing; unref'd when idle. */
  #updateRef(): void {
    if (!this.#ready || this.#pending.size > 0 || this.#closing) this.#worker.ref();
    else this.#worker.unref();
  }

  #fail(error: SoraError): void {
    this.#failure ??= error;
    for (const pending of this.#pending.values()) pending.reject(this.#failure);
    this.#pending.clear();
  }
}

/**
 * A resident tensor: held by the workers in `holders` (the one that computed it, and any it was copied to), or, after
 * an upload and until a run first needs it, by this thread (`host`, the backend's own buffer, moved without a copy).
 */
interface ResidentEntry {
  readonly dtype: TensorDType;
  readonly dims: readonly number[];
  readonly bytes: number;
  readonly holders: Set<WorkerChannel>;
  host: TensorData | undefined;
}

interface Counts {
  toRuntime: number;
  toHost: number;
  withinRuntime: number;
  copiedWithinRuntime: number;
}

interface OpenedSession {
  readonly channel: WorkerChannel;
  readonly loaded: LoadResult;
}

/** A session and how many loaded blocks use it (see load()). */
interface SharedSession {
  refs: number;
  readonly opened: Promise<OpenedSession>;
}

interface LoadedBlock {
  readonly source: BlockSource;
  readonly shared: SharedSession;
  readonly channel: WorkerChannel;
  readonly session: number;
  readonly graph: GraphIO;
  readonly stats: { name: string; loadMs: number; runMs: number[]; weightBytes: number };
}

export type { GraphValue };

/** What a graph declares it takes and returns. */
export interface GraphIO {
  readonly inputs: readonly GraphValue[];
  readonly outputs: readonly GraphValue[];
}

export class OnnxBackend implements Backend {
  readonly kind = 'onnx' as const;
  #provider: ExecutionProvider;
  readonly #logger: Logger;
  readonly #options: WorkerSessionOptions;
  readonly #channels: WorkerChannel[];
  readonly #blocks = new Map<number, LoadedBlock>();
  /** By graph file path. */
  readonly #sessions = new Map<string, SharedSession>();
  readonly #stats: LoadedBlock['stats'][] = [];
  readonly #residents = new Map<number, ResidentEntry>();
  readonly #counts: Counts = { toRuntime: 0, toHost: 0, withinRuntime: 0, copiedWithinRuntime: 0 };
  #nextHandle = 1;
  #nextResident = 1;
  #warm: Promise<void> | undefined;
  readonly #graphCacheDir: string | undefined;
  #ortVersion: string | undefined;

  constructor(options: OnnxBackendOptions = {}) {
    this.#provider = options.executionProvider ?? 'cpu';
    this.#graphCacheDir = options.graphCacheDir;
    this.#logger = options.logger ?? createLogger('warn');
    this.#options = {
      mmapWeights: options.mmapWeights ?? false,
      activationArena: options.activationArena ?? true,
      ...(options.intraOpThreads === undefined ? {} : { intraOpThreads: options.intraOpThreads }),
    };
    const workerData: WorkerData = { ortLogLevel: this.#logger.isLevelEnabled('debug') ? 'warning' : 'fatal' };
    const count = options.workers ?? 2;
    if (!Number.isInteger(count) || count < 1) throw new SoraError('USAGE', `workers must be a positive integer, got ${count}`);
    this.#channels = Array.from({ length: count }, () => new WorkerChannel(workerData));
  }

  readonly mapsWeights = true;

  /** The execution provider in use: the requested one until a load had to fall back to cpu. */
  get device(): string {
    return this.#provider;
  }

  /**
   * Blocks whose manifest entries name the same graph file (an exported block pair's ST_i and TDTM_i) share one
   * session: the weights are read and prepacked once, and the second name loads in no time.
   */
  async load(block: BlockSource): Promise<BlockHandle> {
    if (block.format === 'coreml') throw new SoraError('USAGE', `${block.name}: CoreML package needs --backend coreml (macOS)`);
    let shared = this.#sessions.get(block.path);
    const opening = shared === undefined;
    if (shared === undefined) {
      shared = { refs: 0, opened: this.#open(block) };
      this.#sessions.set(block.path, shared);
    }
    shared.refs++;
    let opened: OpenedSession;
    try {
      opened = await shared.opened;
    } catch (error) {
      if (--shared.refs === 0 && this.#sessions.get(block.path) === shared) this.#sessions.delete(block.path);
      throw error;
    }
    const mismatch = contractMismatch(block, opened.loaded);
    if (mismatch !== undefined) {
      // The mismatch is what the user needs to hear, not a failed unload of the refused session.
      await this.#release(block.path, shared, opened).catch(() => undefined);
      throw new SoraError('MODEL', `${displayPath(block.path)}: block ${block.name}: ${mismatch}`);
    }
    const { loaded, channel } = opened;
    const stats = {
      name: block.name,
      loadMs: opening ? loaded.ms : 0,
      runMs: [],
      weightBytes: block.weightBytes,
      ...(loaded.graphCache === undefined || !opening ? {} : { graphCache: loaded.graphCache.outcome }),
    };
    this.#stats.push(stats);
    const handle = { id: this.#nextHandle++, name: block.name };
    const graph = { inputs: loaded.inputs, outputs: loaded.outputs };
    this.#blocks.set(handle.id, { source: block, shared, channel, session: loaded.session, graph, stats });
    return handle;
  }

  async #open(block: BlockSource): Promise<OpenedSession> {
    const file = displayPath(block.path);
    await access(block.path).catch((error: unknown) => {
      throw new SoraError('MODEL', `${file}: block ${block.name}: graph file does not exist`, { cause: error });
    });
    const channel = this.#idlestChannel();
    channel.sessions++;
    try {
      const entry = this.#cacheEntry(block);
      const cache = entry === undefined ? undefined : { entry, weightBytes: block.weightBytes };
      const reply = await channel.request<LoadResult>({
        type: 'load',
        path: block.path,
        provider: this.#provider,
        options: block.mapWeights === undefined ? this.#options : { ...this.#options, mmapWeights: block.mapWeights },
        ...(cache === undefined ? {} : { cache }),
      });
      if (!reply.ok) throw new SoraError('MODEL', `${file}: ONNX Runtime cannot load block ${block.name}: ${reply.message}`);
      const loaded = reply.result;
      if (loaded.fallbackReason !== undefined) this.#fallBackToCpu(loaded.fallbackReason);
      this.#logger.debug({ block: block.name, loadMs: loaded.ms, device: this.#provider, graphCache: loaded.graphCache?.outcome }, 'block loaded');
      if (loaded.graphCache?.outcome === 'failed') {
        this.#logger.warn({ block: block.name, error: loaded.graphCache.error }, 'the optimised-graph cache failed; the block was optimised afresh');
      }
      return { channel, loaded };
    } catch (error) {
      channel.sessions--;
      throw error;
    }
  }

  /** Drops one holder of a shared session; the last one unloads it from its worker. */
  async #release(path: string, shared: SharedSession, opened: OpenedSession): Promise<void> {
    if (--shared.refs > 0) return;
    if (this.#sessions.get(path) === shared) this.#sessions.delete(path);
    opened.channel.sessions--;
    const reply = await opened.channel.request({ type: 'unload', session: opened.loaded.session });
    if (!reply.ok) throw new SoraError('BACKEND', `${displayPath(path)}: unload failed: ${reply.message}`);
  }

  /**
   * Host inputs are copied (unless transferInputs) and moved to the block's worker; resident ones are already there,
   * or come from the other worker: handed over when this run consumes the only holder's tensor, else copied. Kept
   * outputs stay in the block's worker.
   */
  async run(handle: BlockHandle, inputs: RunInputs, options: RunOptions = {}): Promise<RunOutputs> {
    const block = this.#loaded(handle);
    const consumed = residentsNamed(inputs, options.consume ?? []);
    try {
      const values: Record<string, WorkerValue> = {};
      const transfer = new Set<ArrayBuffer>();
      for (const [name, value] of Object.entries(inputs)) {
        values[name] = isResident(value)
          ? await this.#residentInput(block.channel, value, consumed.has(value.resident), transfer)
          : this.#hostInput(value, options.transferInputs === true, transfer);
      }
      const keep = Object.fromEntries((options.keep ?? []).map((name) => [name, this.#nextResident++]));
      const reply = await block.channel.request<RunResult>(
        { type: 'run', session: block.session, inputs: values, keep, consume: [...consumed] },
        [...transfer],
      );
      if (!reply.ok) throw new SoraError('BACKEND', `block ${block.source.name}: run failed: ${reply.message}`);
      block.stats.runMs.push(reply.result.ms);
      return this.#outputs(block.channel, reply.result, keep);
    } finally {
      this.#forget(consumed, block.channel);
    }
  }

  async upload(t: Tensor, options: { readonly transfer?: boolean } = {}): Promise<ResidentTensor> {
    const data = options.transfer === true ? t.data : t.data.slice();
    const id = this.#nextResident++;
    this.#residents.set(id, { dtype: t.dtype, dims: [...t.dims], bytes: tensorByteLength(t), holders: new Set(), host: data });
    return { resident: id, dtype: t.dtype, dims: [...t.dims] };
  }

  async fetch(t: ResidentTensor): Promise<Tensor> {
    const entry = this.#resident(t);
    if (entry.host !== undefined) return { dtype: entry.dtype, dims: [...entry.dims], data: entry.host.slice() };
    const fetched = await this.#take(t.resident, entry, { copy: true });
    this.#counts.toHost += entry.bytes;
    return fetched;
  }

  async release(tensors: readonly ResidentTensor[]): Promise<void> {
    const drops = new Map<WorkerChannel, number[]>();
    for (const t of tensors) {
      const entry = this.#residents.get(t.resident);
      this.#residents.delete(t.resident);
      for (const holder of entry?.holders ?? []) drops.set(holder, [...(drops.get(holder) ?? []), t.resident]);
    }
    // A worker that has failed or closed holds nothing any more.
    await Promise.all([...drops].map(([channel, residents]) => channel.request({ type: 'drop', residents }).catch(() => undefined)));
  }

  transfers(): TransferCounts {
    return { ...this.#counts };
  }

  /** Resident tensors not yet released, and their bytes (what a finished job should have left: nothing). */
  residentTensors(): { readonly count: number; readonly bytes: number } {
    let bytes = 0;
    for (const entry of this.#residents.values()) bytes += entry.bytes;
    return { count: this.#residents.size, bytes };
  }

  #hostInput(t: Tensor, transferInput: boolean, transfer: Set<ArrayBuffer>): WorkerValue {
    // Without transferInputs the caller keeps its buffer: copy once here, then transfer the copy.
    const data = transferInput ? t.data : t.data.slice();
    if (data.buffer instanceof ArrayBuffer) transfer.add(data.buffer);
    this.#counts.toRuntime += data.byteLength;
    return { tensor: { dtype: t.dtype, dims: t.dims, data } };
  }

  async #residentInput(channel: WorkerChannel, t: ResidentTensor, consumed: boolean, transfer: Set<ArrayBuffer>): Promise<WorkerValue> {
    const entry = this.#resident(t);
    if (entry.holders.has(channel)) return { resident: t.resident };
    const store = consumed ? {} : { store: t.resident };
    if (!consumed) entry.holders.add(channel);
    if (entry.host !== undefined) {
      const data = entry.host;
      entry.host = undefined;
      if (data.buffer instanceof ArrayBuffer) transfer.add(data.buffer);
      this.#counts.toRuntime += entry.bytes;
      return { tensor: { dtype: entry.dtype, dims: entry.dims, data }, ...store };
    }
    const others = [...entry.holders].filter((holder) => holder !== channel);
    const move = consumed && others.length === 1;
    const taken = await this.#take(t.resident, entry, { copy: !move });
    if (move) entry.holders.delete(others[0]!);
    this.#counts.withinRuntime += entry.bytes;
    if (!move) this.#counts.copiedWithinRuntime += entry.bytes;
    if (taken.data.buffer instanceof ArrayBuffer) transfer.add(taken.data.buffer);
    return { tensor: taken, ...store };
  }

  /** The tensor from a worker holding it: a copy, or handed over (then that worker holds it no more). */
  async #take(id: number, entry: ResidentEntry, { copy }: { copy: boolean }): Promise<Tensor> {
    const [holder] = entry.holders;
    if (holder === undefined) throw new SoraError('INTERNAL', `resident tensor ${id} is held nowhere`);
    const reply = await holder.request<Tensor>({ type: 'take', resident: id, copy });
    if (!reply.ok) throw new SoraError('BACKEND', `resident tensor ${id}: ${reply.message}`);
    return reply.result;
  }

  #outputs(channel: WorkerChannel, result: RunResult, keep: Record<string, number>): RunOutputs {
    const outputs: Record<string, Tensor | ResidentTensor> = {};
    for (const [name, t] of Object.entries(result.outputs)) {
      this.#counts.toHost += t.data.byteLength;
      outputs[name] = t;
    }
    for (const [name, { dtype, dims }] of Object.entries(result.kept)) {
      const id = keep[name]!;
      this.#residents.set(id, { dtype, dims, bytes: tensorByteLength({ dtype, dims }), holders: new Set([channel]), host: undefined });
      outputs[name] = { resident: id, dtype, dims };
    }
    return outputs;
  }

  /** Consumed tensors: the run's worker dropped its copy; any other worker holding one drops it too. */
  #forget(consumed: ReadonlySet<number>, ran: WorkerChannel): void {
    if (consumed.size === 0) return;
    const tensors: ResidentTensor[] = [];
    for (const id of consumed) {
      const entry = this.#residents.get(id);
      entry?.holders.delete(ran);
      if (entry !== undefined) tensors.push({ resident: id, dtype: entry.dtype, dims: entry.dims });
    }
    void this.release(tensors);
  }

  #resident(t: ResidentTensor): ResidentEntry {
    const entry = this.#residents.get(t.resident);
    if (entry === undefined) throw new SoraError('INTERNAL', `resident tensor ${t.resident} was released or never existed`);
    return entry;
  }

  async unload(handle: BlockHandle): Promise<void> {
    const block = this.#loaded(handle);
    this.#blocks.delete(handle.id);
    await this.#release(block.source.path, block.shared, await block.shared.opened);
  }

  /** The inputs and outputs a loaded block's graph declares (types and shapes), for checks against the contract. */
  graphIO(handle: BlockHandle): GraphIO {
    return this.#loaded(handle).graph;
  }

  stats(): BlockStats[] {
    return this.#stats.map((stats) => ({ ...stats, runMs: [...stats.runMs] }));
  }

  /** Starts ORT in every worker (see onnx-worker's warm()); a worker that cannot fails its first real load instead. */
  ready(): Promise<void> {
    this.#warm ??= Promise.all(
      this.#channels.map((channel) => channel.request({ type: 'warm', options: this.#options }).catch(() => undefined)),
    ).then(() => undefined);
    return this.#warm;
  }

  async collectGarbage(): Promise<void> {
    await Promise.all(this.#channels.map((channel) => channel.request({ type: 'gc' }).catch(() => undefined)));
  }

  async close(): Promise<void> {
    const handles = [...this.#blocks.entries()].map(([id, block]) => ({ id, name: block.source.name }));
    await Promise.allSettled(handles.map((handle) => this.unload(handle)));
    this.#residents.clear();
    await Promise.all(this.#channels.map((channel) => channel.close()));
  }

  /** With a graph cache: a cached block's entry files, which its loads read instead of the manifest's. */
  blockFiles(block: BlockSource): readonly { path: string; bytes: number }[] | undefined {
    const entry = this.#cacheEntry(block);
    return entry === undefined ? undefined : entryFiles(entry);
  }

  #cacheEntry(block: BlockSource): GraphCacheEntry | undefined {
    if (this.#graphCacheDir === undefined || block.contentKey === undefined) return undefined;
    this.#ortVersion ??= ortVersion();
    return graphCacheEntry(this.#graphCacheDir, block.contentKey, this.#provider, this.#ortVersion);
  }

  #loaded(handle: BlockHandle): LoadedBlock {
    const block = this.#blocks.get(handle.id);
    if (block === undefined) throw new SoraError('BACKEND', `block ${handle.name} is not loaded (handle ${handle.id})`);
    return block;
  }

  /** Fewest queued requests first (an idle worker can load while another runs), then fewest sessions. */
  #idlestChannel(): WorkerChannel {
    return this.#channels.reduce((best, channel) =>
      channel.queued < best.queued || (channel.queued === best.queued && channel.sessions < best.sessions) ? channel : best,
    );
  }

  #fallBackToCpu(reason: string): void {
    if (this.#provider === 'cpu') return;
    this.#logger.warn({ requested: this.#provider, reason }, `execution provider ${this.#provider} is unavailable; using cpu`);
    this.#provider = 'cpu';
  }
}

function contractMismatch(block: BlockSource, loaded: LoadResult): string | undefined {
  for (const [side, expected, actual] of [
    ['inputs', block.inputs, loaded.inputNames],
    ['outputs', block.outputs, loaded.outputNames],
  ] as const) {
    if (expected === undefined) continue;
    const mismatch = nameMismatch(expected, actual);
    if (mismatch !== undefined) return `graph ${side} do not match the contract: ${mismatch} (graph has ${actual.join(', ')})`;
  }
  return undefined;
}

/** The ids of the resident inputs named in `names`. */
function residentsNamed(inputs: RunInputs, names: readonly string[]): Set<number> {
  const ids = new Set<number>();
  for (const name of names) {
    const value = inputs[name];
    if (value !== undefined && isResident(value)) ids.add(value.resident);
  }
  return ids;
}
