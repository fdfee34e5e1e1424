/**
 * CoreML packages for tests, written the way coremltools writes them: an .mlpackage is Manifest.json naming its root
 * model spec (Data/com.apple.CoreML/model.mlmodel, a CoreML.Specification.Model protobuf) and a weights folder.
 * The probe spec (test/fixtures/coreml/range-probe.mlmodel, from scripts/make_coreml_probe.py) is a real one:
 * y = 2x + 1 over x of shape [1, 16, 2..8, 1..4], specification version 7 (macOS 13).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROBE_SPEC = fileURLToPath(new URL('../fixtures/coreml/range-probe.mlmodel', import.meta.url));

/** Protobuf varint encoding. */
function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  return [...bytes, rest];
}

/** A model spec with field 1 (specificationVersion) set: the leading field replaced, or prepended when absent. */
export function withSpecificationVersion(spec: Buffer, version: number): Buffer {
  let rest = spec;
  if (spec[0] === 0x08) {
    let end = 1;
    while ((spec[end]! & 0x80) !== 0) end++;
    rest = spec.subarray(end + 1);
  }
  return Buffer.concat([Buffer.from([0x08, ...varint(version)]), rest]);
}

/** A small stand-in spec: field 2 (description) with a few bytes, then field 1, out of the usual order. */
export function syntheticSpec(version: number): Buffer {
  return Buffer.from([0x12, 0x03, 0x0a, 0x01, 0x78, 0x08, ...varint(version)]);
}

const MANIFEST = {
  fileFormatVersion: '1.0.0',
  itemInfoEntries: {
    '5C0F6D3E-0000-4000-8000-00000000A001': {
      author: 'com.apple.CoreML',
      description: 'CoreML Model Specification',
      name: 'model.mlmodel',
      path: 'com.apple.CoreML/model.mlmodel',
    },
    '5C0F6D3E-0000-4000-8000-00000000A002': {
      author: 'com.apple.CoreML',
      description: 'CoreML Model Weights',
      name: 'weights',
      path: 'com.apple.CoreML/weights',
    },
  },
  rootModelIdentifier: '5C0F6D3E-0000-4000-8000-00000000A001',
};

export interface PackageOptions {
  /** The model spec (default: the probe's). */
  readonly spec?: Buffer;
  /** Overrides the spec's specification version. */
  readonly specificationVersion?: number;
  /** Contents of weights/weight.bin (default: no weight file, as the probe needs none). */
  readonly weights?: Buffer;
}

/** Writes an .mlpackage folder at `path` (which should end in .mlpackage) and returns it. */
export function writeMlpackage(path: string, options: PackageOptions = {}): string {
  const data = join(path, 'Data', 'com.apple.CoreML');
  mkdirSync(join(data, 'weights'), { recursive: true });
  writeFileSync(join(path, 'Manifest.json'), `${JSON.stringify(MANIFEST, null, 4)}\n`);
  const spec = options.spec ?? readFileSync(PROBE_SPEC);
  const versioned = options.specificationVersion === undefined ? spec : withSpecificationVersion(spec, options.specificationVersion);
  writeFileSync(join(data, 'model.mlmodel'), versioned);
  if (options.weights !== undefined) writeFileSync(join(data, 'weights', 'weight.bin'), options.weights);
  return path;
}

/** Writes an .mlmodelc folder with the metadata.json the CoreML compiler writes (only the fields read here). */
export function writeMlmodelc(path: string, metadata: { specificationVersion?: number; macOS?: string } = {}): string {
  mkdirSync(join(path, 'weights'), { recursive: true });
  const entry = {
    ...(metadata.specificationVersion !== undefined && { specificationVersion: metadata.specificationVersion }),
    ...(metadata.macOS !== undefined && { availability: { macOS: metadata.macOS } }),
    modelType: { name: 'MLModelType_mlProgram' },
  };
  writeFileSync(join(path, 'metadata.json'), `${JSON.stringify([entry], null, 2)}\n`);
  writeFileSync(join(path, 'coremldata.bin'), '');
  return path;
}
