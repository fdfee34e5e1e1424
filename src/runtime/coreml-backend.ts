/**
 * The Backend on CoreML (macOS), over the Objective-C++ bridge in native/coreml-bridge. Each block is a
 * compiled model (.mlmodelc), or an .mlpackage compiled once into a cache (coreml-cache.ts). Loads and
 * predictions run on one serial dispatch queue per model, so loading the next block overlaps the current
 * block's prediction (CI-DL) and the JS thread never waits. Each block runs with the compute units its manifest
 * entry gives (the published packages get the authors' app's), unless `--compute-units` sets them for all.
 */
import { existsSync } from 'node:fs';

import { displayPath } from '../display-path.js';
import { errorMessage, isSoraError, SoraError } from '../errors.js';
import { nameMismatch } from '../model/contract.js';
import {
  COMPUTE_UNITS,
  type BridgeError,
  type ComputeUnits,
  type CoreMLBridge,
  type LoadedModel,
  loadCoreMLBridge,
} from '../native/coreml.js';
import type {
  Backend,
  BlockHandle,
  BlockSource,
  BlockStats,
  NamedTensors,
  ResidentTensor,
  RunInputs,
  RunOptions,
  RunOutputs,
  Tensor,
  TransferCounts,
} from './backend.js';
import { CoreMLCompileCache, defaultCoreMLCacheDir } from './coreml-cache.js';
import {
  checkMacosFor,
  macosSatisfies,
  macosVersion,
  modelRequirement,
  packageRequirement,
  tooOldError,
  type ModelRequirement,
} from './coreml-package.js';
import { fromModelOutput, toModelInput } from './coreml-tensors.js';
import { HostResidency } from './host-residency.js';

export { defaultCoreMLCacheDir };

/** MLComputeUnits of a block whose manifest entry names none, and no --compute-units: CoreML's own default. */
const DEFAULT_COMPUTE_UNITS: ComputeUnits = 'all';

export interface CoreMLBackendOptions {
  /** MLComputeUnits for every block, over the manifest's per-block values (`--compute-units`). */
  readonly computeUnits?: ComputeUnits;
  /** Where compiled .mlpackage files are cached (default defaultCoreMLCacheDir()). */
  readonly cacheDir?: string;
  /** This Mac's macOS version (default: the system's); a package needing a newer one is refused before loading. */
  readonly macosVersion?: string | null;
}

/** `--compute-units` value check. */
export function parseComputeUnits(value: string): ComputeUnits {
  const units = COMPUTE_UNITS.find((candidate) => candidate === value);
  if (units === undefined) {
    throw new SoraError('USAGE', `--compute-units must be one of ${COMPUTE_UNITS.join(', ')}, got "${value}"`);
  }
  return units;
}

/** The CoreML backend over the native bridge; on anything but macOS a one-line DEPENDENCY error. */
export function createCoreMLBackend(options: CoreMLBackendOptions = {}): CoreMLBackend {
  return new CoreMLBackend(loadCoreMLBridge(), options);
}

interface CoreMLBlockStats {
  name: string;
  device: ComputeUnits;
  loadMs: number;
  compileMs: number;
  runMs: number[];
  weightBytes: number;
}

interface LoadedBlock {
  readonly source: BlockSource;
  readonly model: LoadedModel;
  readonly stats: CoreMLBlockStats;
  /** Output shapes seen per input-shape signature: offered to CoreML as output backings next time. */
  readonly outputShapes: Map<string, Record<string, readonly number[]>>;
  /** Set when a prediction with output backings failed: this block gets none again. */
  backingsRefused: boolean;
}

export class CoreMLBackend implements Backend {
  readonly kind = 'coreml';
  /** The compute units every block runs with, or "per-block" when the manifest decides. */
  readonly device: string;
  /** The compile cache; its events say what loading cost (compiles, full hashes). */
  readonly cache: CoreMLCompileCache;
  readonly #bridge: CoreMLBridge;
  readonly #override: ComputeUnits | undefined;
  readonly #macos: string | null;
  readonly #blocks = new Map<number, LoadedBlock>();
  readonly #stats: CoreMLBlockStats[] = [];
  /** One compilation per package at a time, shared by concurrent loads of it. */
  readonly #compiling = new Map<string, Promise<string>>();
  /** CoreML reads host memory: a resident tensor is a host tensor kept here (the bridge copies inputs anyway). */
  readonly #residency = new HostResidency();
  #nextHandle = 1;

  /** `bridge` is the native module (createCoreMLBackend), or a fake in tests. */
  constructor(bridge: CoreMLBridge, options: CoreMLBackendOptions = {}) {
    this.#bridge = bridge;
    this.#override = options.computeUnits;
    this.device = options.computeUnits ?? 'per-block';
    this.cache = new CoreMLCompileCache(options.cacheDir ?? defaultCoreMLCacheDir());
    this.#macos = options.macosVersion === undefined ? macosVersion() : options.macosVersion;
  }

  /**
   * Before any work: what the blocks' packages need, refused with a one-line DEPENDENCY error when this macOS is
   * older than the newest requirement (the macOS version unknown: nothing refused, CoreML has the last word).
   */
  async checkBlocks(blocks: readonly BlockSource[]): Promise<ModelRequirement> {
    return this.#macos === null ? modelRequirement(blocks) : checkMacosFor(blocks, this.#macos);
  }

  /** The compute units a block runs with: --compute-units, else its manifest entry's, else CoreML's default. */
  computeUnitsFor(block: BlockSource): ComputeUnits {
    return this.#override ?? block.computeUnits ?? DEFAULT_COMPUTE_UNITS;
  }

  async load(block: BlockSource): Promise<BlockHandle> {
    const started = performance.now();
    const compiledPath = await this.#compiledModel(block);
    const compiled = performance.now();
    const units = this.computeUnitsFor(block);
    const model = await bridgeCall(block.name, () => this.#bridge.loadModel(block.name, compiledPath, units));
    const mismatch = contractMismatch(block, model);
    if (mismatch !== undefined) {
      await bridgeCall(block.name, () => this.#bridge.unloadModel(model.id));
      throw new SoraError('MODEL', `${displayPath(block.path)}: block ${block.name}: ${mismatch}`);
    }
    const loadMs = performance.now() - started;
    const stats = { name: block.name, device: units, loadMs, compileMs: compiled - started, runMs: [], weightBytes: block.weightBytes };
    this.#stats.push(stats);
    const handle = { id: this.#nextHandle++, name: block.name };
    this.#blocks.set(handle.id, { source: block, model, stats, outputShapes: new Map(), backingsRefused: false });
    return handle;
  }

  /**
   * The bridge copies the inputs before predict returns, so the caller's buffers are free again at once and
   * transferInputs changes nothing. Outputs come without a copy from the second prediction with the same input
   * shapes on: the bridge then offers CoreML buffers of the shapes the first one produced (output backings).
   */
  async run(handle: BlockHandle, inputs: RunInputs, options: RunOptions = {}): Promise<RunOutputs> {
    const outputs = await this.#predict(handle, this.#residency.inputs(inputs));
    return this.#residency.outputs(inputs, outputs, options);
  }

  async upload(t: Tensor, options: { readonly transfer?: boolean } = {}): Promise<ResidentTensor> {
    return this.#residency.upload(t, options.transfer === true);
  }

  async fetch(t: ResidentTensor): Promise<Tensor> {
    return this.#residency.fetch(t);
  }

  async release(tensors: readonly ResidentTensor[]): Promise<void> {
    this.#residency.release(tensors);
  }

  transfers(): TransferCounts {
    return this.#residency.counts();
  }

  async #predict(handle: BlockHandle, inputs: NamedTensors): Promise<NamedTensors> {
    const block = this.#loaded(handle);
    const name = block.source.name;
    const undeclared = Object.keys(inputs).filter((input) => !block.model.inputs.some((feature) => feature.name === input));
    if (undeclared.length > 0) throw new SoraError('BACKEND', `${name}: the model has no input ${undeclared.join(', ')}`);
    const feeds = block.model.inputs.map((feature) => {
      const value = inputs[feature.name];
      if (value === undefined) throw new SoraError('BACKEND', `${name}: input ${feature.name} is missing`);
      return toModelInput(name, feature, value);
    });
    const signature = JSON.stringify(feeds.map((feed) => [feed.name, feed.shape]));
    const expected = block.backingsRefused ? undefined : block.outputShapes.get(signature);
    const started = performance.now();
    const predict = (shapes: typeof expected) => bridgeCall(name, () => this.#bridge.predict(block.model.id, feeds, shapes));
    const outputs = await predict(expected).catch((error: unknown) => {
      if (expected === undefined) throw error;
      // CoreML refused a backing it should have taken (Apple: a backing must pass the output's isAllowedValue:);
      // predictions are pure, so the same one again without backings costs only time.
      block.backingsRefused = true;
      return predict(undefined);
    });
    block.stats.runMs.push(performance.now() - started);
    block.outputShapes.set(signature, Object.fromEntries(Object.entries(outputs).map(([output, value]) => [output, value.shape])));
    return Object.fromEntries(Object.entries(outputs).map(([output, value]) => [output, fromModelOutput(value)]));
  }

  async unload(handle: BlockHandle): Promise<void> {
    const block = this.#loaded(handle);
    this.#blocks.delete(handle.id);
    await bridgeCall(block.source.name, () => this.#bridge.unloadModel(block.model.id));
  }

  /** What the loaded model declares about its inputs and outputs, shape constraints as CoreML reports them. */
  features(handle: BlockHandle): Pick<LoadedModel, 'inputs' | 'outputs'> {
    const { inputs, outputs } = this.#loaded(handle).model;
    return { inputs, outputs };
  }

  stats(): (BlockStats & { readonly device: ComputeUnits; readonly compileMs: number })[] {
    return this.#stats.map((stats) => ({ ...stats, runMs: [...stats.runMs] }));
  }

  async close(): Promise<void> {
    const handles = [...this.#blocks.entries()].map(([id, block]) => ({ id, name: block.source.name }));
    await Promise.allSettled(handles.map((handle) => this.unload(handle)));
    this.#residency.clear();
  }

  #loaded(handle: BlockHandle): LoadedBlock {
    const block = this.#blocks.get(handle.id);
    if (block === undefined) throw new SoraError('BACKEND', `block ${handle.name} is not loaded (handle ${handle.id})`);
    return block;
  }

  /** The .mlmodelc to load: the block's own, or its package compiled into the cache; refused if macOS is too old. */
  async #compiledModel(block: BlockSource): Promise<string> {
    const file = displayPath(block.path);
    if (!existsSync(block.path)) throw new SoraError('MODEL', `${file}: block ${block.name}: model does not exist`);
    if (!block.path.endsWith('.mlmodelc') && !block.path.endsWith('.mlpackage')) {
      throw new SoraError('MODEL', `${file}: block ${block.name}: a CoreML block is an .mlmodelc or .mlpackage folder`);
    }
    // Before CoreML sees it: an older macOS fails such a package with a spec-version error, or not at all until
    // a prediction.
    const requirement = await packageRequirement(block.path);
    if (this.#macos !== null && requirement.macos !== null && !macosSatisfies(this.#macos, requirement.macos)) {
      throw tooOldError({ name: block.name, path: block.path, ...requirement }, this.#macos);
    }
    if (block.path.endsWith('.mlmodelc')) return block.path;
    let compiling = this.#compiling.get(block.path);
    if (compiling === undefined) {
      compiling = this.cache
        .compiled(block.path, (compiledPath) => bridgeCall(block.name, () => this.#bridge.compileModel(block.name, block.path, compiledPath)))
        .finally(() => this.#compiling.delete(block.path));
      this.#compiling.set(block.path, compiling);
    }
    return compiling;
  }
}

/** Bridge rejections as one-line BACKEND errors "<model>: <NSError description>". */
async function bridgeCall<T>(model: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (isSoraError(error)) throw error;
    const detail = (error as BridgeError | undefined)?.detail ?? errorMessage(error);
    throw new SoraError('BACKEND', `${model}: ${detail.replace(/\s*\n\s*/g, ' ')}`, { cause: error });
  }
}

function contractMismatch(block: BlockSource, model: LoadedModel): string | undefined {
  for (const [side, expected, actual] of [
    ['inputs', block.inputs, model.inputs.map((feature) => feature.name)],
    ['outputs', block.outputs, model.outputs.map((feature) => feature.name)],
  ] as const) {
    if (expected === undefined) continue;
    const mismatch = nameMismatch(expected, actual);
    if (mismatch !== undefined) return `model ${side} do not match the contract: ${mismatch} (model has ${actual.join(', ')})`;
  }
  return undefined;
}
