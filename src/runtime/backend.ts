/**
 * The one interface every block runtime implements (ONNX Runtime here, CoreML on macOS).
 * A "block" is one file of the model contract (models/README.md), e.g. `stdit3_ST_3`.
 */
import type { ComputeUnits } from '../native/coreml.js';

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
}

export interface RunOptions {
  /**
   * When true the input buffers are transferred to the runtime (zero copy) and become unusable for the caller.
   */
  readonly transferInputs?: boolean;
}

export interface Backend {
  readonly kind: 'onnx' | 'coreml';
  /** Execution provider or compute units actually in use (after any fallback). */
  readonly device: string;
  load(block: BlockSource): Promise<BlockHandle>;
  run(handle: BlockHandle, inputs: NamedTensors, options?: RunOptions): Promise<NamedTensors>;
  unload(handle: BlockHandle): Promise<void>;
  stats(): BlockStats[];
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
  /** Releases every loaded block and background thread. */
  close(): Promise<void>;
}

/** The optional memory hooks of `backend`, for a wrapper that forwards them. */
export function memoryHooks(backend: Backend): Pick<Backend, 'ready' | 'collectGarbage'> {
  return {
    ...(backend.ready && { ready: () => backend.ready!() }),
    ...(backend.collectGarbage && { collectGarbage: () => backend.collectGarbage!() }),
  };
}
