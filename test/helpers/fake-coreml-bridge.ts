/**
 * A FAKE of the native CoreML bridge (sora_coreml.node), for tests on machines without CoreML. It follows the
 * bridge's JS API (src/native/coreml.ts) and what Apple documents CoreML doing: flexible axes reported as NSRanges,
 * packages refused when their specification version is newer than the macOS it plays, compiled models carrying
 * metadata.json, outputs written into offered backings. It records every call so tests can check what the
 * TypeScript side asked for.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type {
  BridgeError,
  BridgeInput,
  BridgeOutput,
  ComputeUnits,
  CoreMLBridge,
  FeatureDescription,
  LoadedModel,
  SizeRange,
} from '../../src/native/coreml.js';
import { packageSpecPath, specificationVersion } from '../../src/runtime/coreml-package.js';

export type Features = { inputs: FeatureDescription[]; outputs: FeatureDescription[] };

/** A flexible axis as CoreML reports it, per Apple's documentation: NSRange membership, location ≤ size < location + length. */
export const nsrange = (min: number, max: number): SizeRange => ({ location: min, length: max - min + 1 });
/** The same axis in the other reading some code uses: length = max − min (a fixed axis has length 0). */
export const span = (min: number, max: number): SizeRange => ({ location: min, length: max - min });
/** An axis with no upper bound (coremltools' -1), reported with a huge length. */
export const unbounded = (min: number): SizeRange => ({ location: min, length: 2 ** 63 });

export function feature(name: string, dataType: FeatureDescription['dataType'], shape: number[], ranges?: SizeRange[]): FeatureDescription {
  return { name, dataType, shape, shapeConstraint: ranges ? { kind: 'range', ranges } : { kind: 'unspecified' } };
}

/** Rejects the way the native bridge does: "<model>: <detail>" plus the NSError fields. */
export function bridgeError(model: string, detail: string, domain = 'com.apple.CoreML', errorCode = 0): BridgeError {
  return Object.assign(new Error(`${model}: ${detail}`), { model, detail, domain, errorCode });
}

/** The newest specification version CoreML reads on each macOS (coremltools' deployment targets). */
const SPEC_OF_MACOS: Record<string, number> = { '13': 7, '14': 8, '15': 9 };

export class FakeCoreMLBridge implements CoreMLBridge {
  readonly apiVersion = 2;
  readonly compiles: { name: string; packagePath: string; compiledPath: string }[] = [];
  readonly loads: { name: string; compiledPath: string; computeUnits: ComputeUnits }[] = [];
  readonly predictions: { id: number; inputs: readonly BridgeInput[]; outputShapes?: Readonly<Record<string, readonly number[]>> }[] = [];
  readonly unloaded: number[] = [];
  readonly failures: { compile?: BridgeError; load?: BridgeError; predict?: BridgeError; backings?: BridgeError } = {};
  outputs: Record<string, BridgeOutput> = {};
  #nextId = 1;

  /** `macos`: the major version the fake CoreML behaves as; it refuses specs newer than that version reads. */
  constructor(
    readonly models: Record<string, Features>,
    readonly macos = '15',
  ) {}

  /** Like the CoreML compiler: refuses a spec too new for this macOS, records the spec in metadata.json. */
  async compileModel(name: string, packagePath: string, compiledPath: string): Promise<void> {
    this.compiles.push({ name, packagePath, compiledPath });
    if (this.failures.compile) throw this.failures.compile;
    const version = await specificationVersion(await packageSpecPath(packagePath));
    this.#refuseNewer(name, version ?? 0);
    await mkdir(compiledPath, { recursive: true });
    await writeFile(join(compiledPath, 'metadata.json'), JSON.stringify([{ specificationVersion: version }]));
  }

  async loadModel(name: string, compiledPath: string, computeUnits: ComputeUnits): Promise<LoadedModel> {
    this.loads.push({ name, compiledPath, computeUnits });
    if (this.failures.load) throw this.failures.load;
    const metadata = JSON.parse(readFileSync(join(compiledPath, 'metadata.json'), 'utf8')) as [{ specificationVersion?: number }];
    this.#refuseNewer(name, metadata[0].specificationVersion ?? 0);
    const features = this.models[name];
    if (!features) throw bridgeError(name, 'no such model in the fake');
    return { id: this.#nextId++, ...features };
  }

  async predict(
    id: number,
    inputs: readonly BridgeInput[],
    outputShapes?: Readonly<Record<string, readonly number[]>>,
  ): Promise<Record<string, BridgeOutput>> {
    this.predictions.push({ id, inputs, ...(outputShapes && { outputShapes }) });
    if (this.failures.predict) throw this.failures.predict;
    if (this.failures.backings && outputShapes) throw this.failures.backings;
    return Object.fromEntries(
      Object.entries(this.outputs).map(([name, output]) => [name, { ...output, inPlace: outputShapes?.[name] !== undefined }]),
    );
  }

  async unloadModel(id: number): Promise<void> {
    this.unloaded.push(id);
  }

  #refuseNewer(name: string, version: number): void {
    const supported = SPEC_OF_MACOS[this.macos] ?? 9;
    if (version > supported) {
      throw bridgeError(name, `Error reading protobuf spec. validator error: The model supplied is of version ${version}, intended for a newer version of Xcode. This version of Xcode supports model version ${supported} or earlier.`, 'com.apple.CoreML', 0);
    }
  }
}
