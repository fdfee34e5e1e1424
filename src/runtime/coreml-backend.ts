/**
 * The Backend on CoreML (macOS), over the Objective-C++ bridge in native/coreml-bridge. Each block is a
 * compiled model (.mlmodelc), or an .mlpackage compiled once into a cache folder keyed by its content hash.
 * Loads and predictions run on one serial dispatch queue per model, so loading the next block overlaps the
 * current block's prediction (CI-DL) and the JS thread never waits.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';

import { toolCacheDir } from '../cache-dir.js';
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
import type { Backend, BlockHandle, BlockSource, BlockStats, NamedTensors } from './backend.js';
import { fromModelOutput, toModelInput } from './coreml-tensors.js';

export interface CoreMLBackendOptions {
  /** MLComputeUnits for every model (default all). */
  readonly computeUnits?: ComputeUnits;
  /** Where compiled .mlpackage files are cached (default defaultCoreMLCacheDir()). */
  readonly cacheDir?: string;
}

/** `--compute-units` value check. */
export function parseComputeUnits(value: string): ComputeUnits {
  const units = COMPUTE_UNITS.find((candidate) => candidate === value);
  if (units === undefined) {
    throw new SoraError('USAGE', `--compute-units must be one of ${COMPUTE_UNITS.join(', ')}, got "${value}"`);
  }
  return units;
}

/** ~/Library/Caches/ondevice-sora/coreml on macOS, $XDG_CACHE_HOME (or ~/.cache)/ondevice-sora/coreml elsewhere. */
export function defaultCoreMLCacheDir(): string {
  return toolCacheDir('coreml');
}

/** The CoreML backend over the native bridge; on anything but macOS a one-line DEPENDENCY error. */
export function createCoreMLBackend(options: CoreMLBackendOptions = {}): CoreMLBackend {
  return new CoreMLBackend(loadCoreMLBridge(), options);
}

interface LoadedBlock {
  readonly source: BlockSource;
  readonly model: LoadedModel;
  readonly stats: { name: string; loadMs: number; runMs: number[]; weightBytes: number };
}

export class CoreMLBackend implements Backend {
  readonly kind = 'coreml';
  readonly device: ComputeUnits;
  readonly #bridge: CoreMLBridge;
  readonly #cacheDir: string;
  readonly #blocks = new Map<number, LoadedBlock>();
  readonly #stats: LoadedBlock['stats'][] = [];
  /** One compilation per package at a time, shared by concurrent loads of it. */
  readonly #compiling = new Map<string, Promise<string>>();
  #nextHandle = 1;

  /** `bridge` is the native module (createCoreMLBackend), or a fake in tests. */
  constructor(bridge: CoreMLBridge, options: CoreMLBackendOptions = {}) {
    this.#bridge = bridge;
    this.device = options.computeUnits ?? 'all';
    this.#cacheDir = options.cacheDir ?? defaultCoreMLCacheDir();
  }

  async load(block: BlockSource): Promise<BlockHandle> {
    const started = performance.now();
    const compiledPath = await this.#compiledModel(block);
    const model = await bridgeCall(block.name, () => this.#bridge.loadModel(block.name, compiledPath, this.device));
    const mismatch = contractMismatch(block, model);
    if (mismatch !== undefined) {
      await bridgeCall(block.name, () => this.#bridge.unloadModel(model.id));
      throw new SoraError('MODEL', `${displayPath(block.path)}: block ${block.name}: ${mismatch}`);
    }
    const stats = { name: block.name, loadMs: performance.now() - started, runMs: [], weightBytes: block.weightBytes };
    this.#stats.push(stats);
    const handle = { id: this.#nextHandle++, name: block.name };
    this.#blocks.set(handle.id, { source: block, model, stats });
    return handle;
  }

  /** Inputs are read in place by CoreML (zero copy) unless a conversion is needed, so transferInputs changes nothing. */
  async run(handle: BlockHandle, inputs: NamedTensors): Promise<NamedTensors> {
    const block = this.#loaded(handle);
    const name = block.source.name;
    const undeclared = Object.keys(inputs).filter((input) => !block.model.inputs.some((feature) => feature.name === input));
    if (undeclared.length > 0) throw new SoraError('BACKEND', `${name}: the model has no input ${undeclared.join(', ')}`);
    const feeds = block.model.inputs.map((feature) => {
      const value = inputs[feature.name];
      if (value === undefined) throw new SoraError('BACKEND', `${name}: input ${feature.name} is missing`);
      return toModelInput(name, feature, value);
    });
    const started = performance.now();
    const outputs = await bridgeCall(name, () => this.#bridge.predict(block.model.id, feeds));
    block.stats.runMs.push(performance.now() - started);
    return Object.fromEntries(Object.entries(outputs).map(([output, value]) => [output, fromModelOutput(value)]));
  }

  async unload(handle: BlockHandle): Promise<void> {
    const block = this.#loaded(handle);
    this.#blocks.delete(handle.id);
    await bridgeCall(block.source.name, () => this.#bridge.unloadModel(block.model.id));
  }

  stats(): BlockStats[] {
    return this.#stats.map((stats) => ({ ...stats, runMs: [...stats.runMs] }));
  }

  async close(): Promise<void> {
    const handles = [...this.#blocks.entries()].map(([id, block]) => ({ id, name: block.source.name }));
    await Promise.allSettled(handles.map((handle) => this.unload(handle)));
  }

  #loaded(handle: BlockHandle): LoadedBlock {
    const block = this.#blocks.get(handle.id);
    if (block === undefined) throw new SoraError('BACKEND', `block ${handle.name} is not loaded (handle ${handle.id})`);
    return block;
  }

  /** The .mlmodelc to load: the block's own, or its package compiled into the cache. */
  async #compiledModel(block: BlockSource): Promise<string> {
    const file = displayPath(block.path);
    if (!existsSync(block.path)) throw new SoraError('MODEL', `${file}: block ${block.name}: model does not exist`);
    if (block.path.endsWith('.mlmodelc')) return block.path;
    if (!block.path.endsWith('.mlpackage')) {
      throw new SoraError('MODEL', `${file}: block ${block.name}: a CoreML block is an .mlmodelc or .mlpackage folder`);
    }
    let compiling = this.#compiling.get(block.path);
    if (compiling === undefined) {
      compiling = this.#compileIntoCache(block).finally(() => this.#compiling.delete(block.path));
      this.#compiling.set(block.path, compiling);
    }
    return compiling;
  }

  async #compileIntoCache(block: BlockSource): Promise<string> {
    const hash = await cachedContentHash(block.path, this.#cacheDir);
    const compiledPath = join(this.#cacheDir, `${basename(block.path, '.mlpackage')}-${hash.slice(0, 32)}.mlmodelc`);
    if (!existsSync(compiledPath)) {
      await bridgeCall(block.name, () => this.#bridge.compileModel(block.name, block.path, compiledPath));
    }
    return compiledPath;
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

// ------------------------------------------------------------------------------------------------
// Content hash of an .mlpackage folder, remembered per (paths, sizes, mtimes) so that multi-GB packages
// are read once, not at every load.

async function packageFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

/** SHA-256 over every file's relative path, size and bytes, in path order. */
export async function packageContentHash(root: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of await packageFiles(root)) {
    const { size } = await stat(join(root, file));
    hash.update(`${file}\0${size}\0`);
    for await (const chunk of createReadStream(join(root, file))) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

async function packageStamp(root: string): Promise<string> {
  const stamp = createHash('sha256').update(root);
  for (const file of await packageFiles(root)) {
    const { size, mtimeMs } = await stat(join(root, file));
    stamp.update(`\0${file}\0${size}\0${mtimeMs}`);
  }
  return stamp.digest('hex');
}

async function cachedContentHash(root: string, cacheDir: string): Promise<string> {
  const stampFile = join(cacheDir, 'stamps', await packageStamp(root));
  const known = await readFile(stampFile, 'utf8').catch(() => undefined);
  if (known !== undefined && /^[0-9a-f]{64}$/.test(known)) return known;
  const hash = await packageContentHash(root);
  await mkdir(join(cacheDir, 'stamps'), { recursive: true });
  // Written aside and renamed, so a concurrent reader never sees half a hash.
  const partial = `${stampFile}.${process.pid}`;
  await writeFile(partial, hash);
  await rename(partial, stampFile);
  return hash;
}
