/**
 * The one interface every block runtime implements (ONNX Runtime here, CoreML on macOS).
 * A "block" is one file of the model contract (models/README.md), e.g. `stdit3_ST_3`.
 */
import { SoraError } from '../errors.js';
import type { ComputeUnits } from '../native/coreml.js';
import type { MemoryMeter } from './memory-meter.js';

export const TENSOR_DTYPES = ['float32', 'float16', 'int64', 'int32'] as const;
export type TensorDType = (typeof TENSOR_DTYPES)[number];

export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array;

/** A named tensor crossing the backend boundary. float16 data is carried as raw bits in a Uint16Array. */
export interface Tensor {
  readonly dtype: TensorDType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

export type NamedTensors = Record<string, Tensor>;

/**
 * A tensor that stays where a backend computed or received it (an ONNX worker thread, a remote runner): passed as
 * an input of later runs instead of its data, so that activations and per-generation constants do not cross to the
 * host and back on every block. Valid until released (or consumed by a run); `fetch` brings its data to the host.
 */
export interface ResidentTensor {
  /** The backend's id of the tensor. */
  readonly resident: number;
  readonly dtype: TensorDType;
  readonly dims: readonly number[];
}

export type TensorValue = Tensor | ResidentTensor;
/** Inputs of a run: host tensors, resident ones, or a mix. */
export type RunInputs = Readonly<Record<string, TensorValue>>;
/** Outputs of a run: those named in RunOptions.keep are resident, the others host tensors. */
export type RunOutputs = Readonly<Record<string, TensorValue>>;

export function isResident(value: TensorValue): value is ResidentTensor {
  return 'resident' in value;
}

/**
 * Tensor bytes a backend moved, counted since it was made. What the host sends (inline inputs, uploads) and gets back
 * (returned outputs, fetches) crosses to where blocks run: a worker thread, another process, a cable. Moves between
 * the runtime's own places (one ONNX worker thread to another) are counted apart; a remote runner has one place.
 */
export interface TransferCounts {
  readonly toRuntime: number;
  readonly toHost: number;
  /** Moved from one of the runtime's places to another, handed over (no copy) or copied. */
  readonly withinRuntime: number;
  /** Of withinRuntime, what was copied: a tensor needed in two places at once. */
  readonly copiedWithinRuntime: number;
}

export const NO_TRANSFERS: TransferCounts = { toRuntime: 0, toHost: 0, withinRuntime: 0, copiedWithinRuntime: 0 };

export function transferDelta(after: TransferCounts, before: TransferCounts): TransferCounts {
  return {
    toRuntime: after.toRuntime - before.toRuntime,
    toHost: after.toHost - before.toHost,
    withinRuntime: after.withinRuntime - before.withinRuntime,
    copiedWithinRuntime: after.copiedWithinRuntime - before.copiedWithinRuntime,
  };
}

/** onnx: a graph file (plus weight files); coreml: a compiled .mlmodelc or an .mlpackage folder. */
export const BLOCK_FORMATS = ['onnx', 'coreml'] as const;
export type BlockFormat = (typeof BLOCK_FORMATS)[number];

export interface BlockSource {
  /** Contract name, e.g. `stdit3_ST_3`; used in messages and stats. */
  readonly name: string;
  /** The manifest's `format` of the block, so a backend refuses one it cannot run before touching the file. */
  readonly format?: BlockFormat;
  /** Absolute path of the graph file (ONNX) or compiled model (CoreML). */
  readonly path: string;
  /** Bytes of weights this block keeps resident, from the manifest. */
  readonly weightBytes: number;
  /** Input and output names the contract requires; when given, load() rejects a graph whose names differ. */
  readonly inputs?: readonly string[];
  readonly outputs?: readonly string[];
  /** CoreML compute units the manifest gives this block; the CoreML backend's own setting overrides it. */
  readonly computeUnits?: ComputeUnits;
  /** A digest of the block's files' sha256 from the manifest: names its content in caches (onnx-graph-cache.ts). */
  readonly contentKey?: string;
  /**
   * Map the weight files instead of copying (and prepacking) them, where the backend can (`mapsWeights`): for blocks
   * that stream under a memory budget. Absent: the backend's own setting.
   */
  readonly mapWeights?: boolean;
}

export interface BlockHandle {
  readonly id: number;
  readonly name: string;
}

export interface BlockStats {
  readonly name: string;
  readonly loadMs: number;
  readonly runMs: number[];
  readonly weightBytes: number;
  /** ONNX with a graph cache: whether the session came from it (onnx-graph-cache.ts). */
  readonly graphCache?: 'hit' | 'written' | 'skipped' | 'failed';
}

export interface RunOptions {
  /**
   * When true the host input buffers are transferred to the runtime (zero copy) and become unusable for the caller.
   */
  readonly transferInputs?: boolean;
  /** Outputs to keep where they were computed: they come back as ResidentTensors, the others as host tensors. */
  readonly keep?: readonly string[];
  /**
   * Names of resident inputs this run is the last user of: released once the run has read them, which lets a backend
   * hand them over to where the run happens without a copy.
   */
  readonly consume?: readonly string[];
}

export interface UnloadOptions {
  /**
   * The caller is done with the block, not short of memory: a backend that serves many jobs (a runner) may keep it
   * loaded for the next one. A memory-budgeted scheduler never sets this: its unloads must free memory.
   */
  readonly mayKeep?: boolean;
}

/** onnx and coreml run blocks in this process; remote sends them to a runner (`serve`, the iPhone app). */
export type BackendKindName = 'onnx' | 'coreml' | 'remote';

export interface Backend {
  readonly kind: BackendKindName;
  /** Execution provider or compute units actually in use (after any fallback). */
  readonly device: string;
  load(block: BlockSource): Promise<BlockHandle>;
  run(handle: BlockHandle, inputs: RunInputs, options?: RunOptions): Promise<RunOutputs>;
  unload(handle: BlockHandle, options?: UnloadOptions): Promise<void>;
  /** Puts a host tensor where blocks run, for runs to reference (`transfer`: the caller gives its buffer away). */
  upload(tensor: Tensor, options?: { readonly transfer?: boolean }): Promise<ResidentTensor>;
  /** A resident tensor's data on the host; the tensor stays resident. */
  fetch(tensor: ResidentTensor): Promise<Tensor>;
  /**
   * Frees resident tensors; ids already released or consumed are ignored. Resolves without doing anything once the
   * backend is closed or has failed.
   */
  release(tensors: readonly ResidentTensor[]): Promise<void>;
  /** Bytes moved so far. */
  transfers(): TransferCounts;
  stats(): BlockStats[];
  /**
   * The memory of the process that runs the blocks, when that is not this one (a remote runner); a memory budget
   * caps that process. Absent: this process.
   */
  readonly memory?: MemoryMeter;
  /**
   * Resolves once the backend's threads have started and set up their runtime (never rejects), so that a memory
   * budget sees that memory in use before it admits the first load. Absent: nothing starts in the background.
   */
  ready?(): Promise<void>;
  /**
   * Has the backend's threads free their unreachable JS memory now (tensors of finished runs), where they can; never
   * rejects. V8 frees such buffers only when its own heuristics say so, which a memory budget cannot wait for.
   */
  collectGarbage?(): Promise<void>;
  /**
   * The files a load of `block` reads, when they are not the manifest's (a cached optimised graph), so that a
   * scheduler prefetches and drops the right ones from the page cache. Absent or undefined: the manifest's files.
   */
  blockFiles?(block: BlockSource): readonly { readonly path: string; readonly bytes: number }[] | undefined;
  /**
   * Honours BlockSource.mapWeights: a mapped block's weight pages come into the process as its runs touch them, so
   * its load's RSS shows less than it will hold. Absent: weights are read (or copied) by the load, whatever is asked.
   */
  readonly mapsWeights?: boolean;
  /** Releases every loaded block, resident tensor and background thread. */
  close(): Promise<void>;
}

/** Host tensors of a run's outputs, for callers that kept none: a resident one here is a bug of the caller. */
export function hostOutputs(outputs: RunOutputs): NamedTensors {
  const host: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(outputs)) {
    if (isResident(value)) throw new SoraError('INTERNAL', `output ${name} is resident; fetch it first`);
    host[name] = value;
  }
  return host;
}

/** Bytes of a tensor's data, host or resident. */
export function tensorByteLength(value: Pick<TensorValue, 'dtype' | 'dims'>): number {
  return elementCountOf(value.dims) * DTYPE_BYTES[value.dtype];
}

export const DTYPE_BYTES: Readonly<Record<TensorDType, number>> = { float32: 4, float16: 2, int64: 8, int32: 4 };

function elementCountOf(dims: readonly number[]): number {
  return dims.reduce((product, dim) => product * dim, 1);
}

type Operations = Pick<Backend, 'load' | 'run' | 'unload' | 'upload' | 'fetch' | 'release' | 'close'>;

/** `inner` with some operations replaced; every other one (residency, counts, memory) goes to `inner`. */
export function wrapBackend(inner: Backend, overrides: Partial<Operations>): Backend {
  return {
    kind: inner.kind,
    get device() {
      return inner.device;
    },
    get memory() {
      return inner.memory;
    },
    load: (block) => inner.load(block),
    run: (handle, inputs, options) => inner.run(handle, inputs, options),
    unload: (handle, options) => inner.unload(handle, options),
    upload: (t, options) => inner.upload(t, options),
    fetch: (t) => inner.fetch(t),
    release: (tensors) => inner.release(tensors),
    transfers: () => inner.transfers(),
    stats: () => inner.stats(),
    close: () => inner.close(),
    ...memoryHooks(inner),
    ...overrides,
  };
}

/** The optional memory hooks of `backend`, for a wrapper that forwards them. */
export function memoryHooks(backend: Backend): Pick<Backend, 'ready' | 'collectGarbage' | 'blockFiles' | 'mapsWeights'> {
  return {
    ...(backend.mapsWeights === true && { mapsWeights: true }),
    ...(backend.ready && { ready: () => backend.ready!() }),
    ...(backend.collectGarbage && { collectGarbage: () => backend.collectGarbage!() }),
    ...(backend.blockFiles && { blockFiles: (block: BlockSource) => backend.blockFiles!(block) }),
  };
}
