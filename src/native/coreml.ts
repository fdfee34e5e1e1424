/**
 * The JS API of sora_coreml.node (native/coreml-bridge, built on macOS only) and its loader.
 * src/runtime/coreml-backend.ts builds the Backend on top of it; tests substitute a fake with the same API.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { errorMessage, SoraError } from '../errors.js';
import { packagePath } from '../package-root.js';

export const COMPUTE_UNITS = ['all', 'cpu', 'cpu-gpu', 'cpu-ane'] as const;
/** MLComputeUnits: all, CPU only, CPU and GPU, CPU and Neural Engine (macOS 13+). */
export type ComputeUnits = (typeof COMPUTE_UNITS)[number];

/** Element types the bridge reads from models; inputs can be fed as float32, float16 (raw bits) or int32. */
export type BridgeDataType = 'float32' | 'float16' | 'int32' | 'float64';
export type BridgeInputType = 'float32' | 'float16' | 'int32';

/**
 * One axis of MLMultiArrayShapeConstraint.sizeRangeForDimension, exactly as CoreML reports it: an NSRange.
 * Which sizes it allows is read in src/runtime/coreml-tensors.ts (sizeBounds), which handles both readings.
 */
export interface SizeRange {
  readonly location: number;
  readonly length: number;
}

/** MLMultiArrayShapeConstraint: for `range`, one raw NSRange per axis. */
export type ShapeConstraint =
  | { readonly kind: 'unspecified' }
  | { readonly kind: 'range'; readonly ranges: readonly SizeRange[] }
  | { readonly kind: 'enumerated'; readonly shapes: readonly (readonly number[])[] };

/** One input or output as the model declares it; dataType null for features that are not multi-arrays. */
export interface FeatureDescription {
  readonly name: string;
  readonly dataType: BridgeDataType | null;
  /** The required or default shape. */
  readonly shape: readonly number[];
  readonly shapeConstraint: ShapeConstraint;
}

export interface LoadedModel {
  readonly id: number;
  readonly inputs: readonly FeatureDescription[];
  readonly outputs: readonly FeatureDescription[];
}

/**
 * A dense row-major input. The bridge copies `data` into memory of its own before predict() returns, so the caller
 * may change, reuse or transfer the buffer as soon as the call returned (the Promise need not have settled).
 */
export interface BridgeInput {
  readonly name: string;
  readonly dataType: BridgeInputType;
  readonly shape: readonly number[];
  readonly data: Float32Array | Uint16Array | Int32Array;
}

/** A dense row-major output (strides already resolved by the bridge). */
export interface BridgeOutput {
  readonly dataType: BridgeDataType;
  readonly shape: readonly number[];
  readonly data: ArrayBuffer;
  /** True when CoreML wrote straight into the buffer the bridge offered (outputBackings), so no copy was made. */
  readonly inPlace?: boolean;
}

export interface CoreMLBridge {
  readonly apiVersion: number;
  /** Compiles an .mlpackage and moves the .mlmodelc to compiledPath (parent folders created). */
  compileModel(name: string, packagePath: string, compiledPath: string): Promise<void>;
  /** Loads a compiled model on its own serial dispatch queue. */
  loadModel(name: string, compiledPath: string, computeUnits: ComputeUnits): Promise<LoadedModel>;
  /**
   * `outputShapes`: the shape each output will have (known from an earlier prediction with the same input shapes);
   * the bridge then offers CoreML buffers of that shape to write into (MLPredictionOptions.outputBackings).
   */
  predict(
    id: number,
    inputs: readonly BridgeInput[],
    outputShapes?: Readonly<Record<string, readonly number[]>>,
  ): Promise<Record<string, BridgeOutput>>;
  /** Releases the model after the predictions already queued for it. */
  unloadModel(id: number): Promise<void>;
}

/**
 * How the bridge rejects: message "<model>: <detail>", detail = NSError.localizedDescription (or the exception
 * reason), plus the NSError domain and code when there was one. Argument errors are plain TypeErrors.
 */
export interface BridgeError extends Error {
  readonly model?: string;
  readonly detail?: string;
  readonly domain?: string;
  readonly errorCode?: number;
}

const API_VERSION = 2;
const BRIDGE_PATH = packagePath('build', 'Release', 'sora_coreml.node');
const NOT_MAC = 'the CoreML backend needs macOS on Apple silicon; use --backend onnx';

export interface BridgeStatus {
  readonly available: boolean;
  readonly path: string;
  /** Why the bridge cannot be used; null when available. */
  readonly reason: string | null;
}

let cached: { bridge: CoreMLBridge | null; status: BridgeStatus } | undefined;

function load(): { bridge: CoreMLBridge | null; status: BridgeStatus } {
  const unavailable = (reason: string) => ({ bridge: null, status: { available: false, path: BRIDGE_PATH, reason } });
  if (process.platform !== 'darwin') return unavailable(NOT_MAC);
  if (!existsSync(BRIDGE_PATH)) {
    return unavailable(
      'the CoreML bridge is not built; run `npm run build:native` (needs macOS 13+, the Xcode command line tools: ' +
        '`xcode-select --install`, and cmake: `brew install cmake`)',
    );
  }
  try {
    const bridge = createRequire(import.meta.url)(BRIDGE_PATH) as CoreMLBridge;
    if (bridge.apiVersion !== API_VERSION) {
      return unavailable(`the CoreML bridge build is stale (API ${String(bridge.apiVersion)}); run \`npm run build:native\``);
    }
    return { bridge, status: { available: true, path: BRIDGE_PATH, reason: null } };
  } catch (error) {
    return unavailable(`the CoreML bridge cannot be loaded: ${errorMessage(error).split('\n')[0] ?? ''}`);
  }
}

/** Whether the CoreML backend can run here, and if not why; for `doctor`. */
export function coremlBridgeStatus(): BridgeStatus {
  cached ??= load();
  return cached.status;
}

/** The native bridge, or a one-line DEPENDENCY error saying why it cannot be used. */
export function loadCoreMLBridge(): CoreMLBridge {
  cached ??= load();
  if (cached.bridge === null) throw new SoraError('DEPENDENCY', cached.status.reason ?? NOT_MAC);
  return cached.bridge;
}
