/**
 * What a CoreML package says about itself without CoreML: its specification version, and from it the oldest macOS
 * that loads it. An older macOS refuses such a package with a spec-version error deep inside a run; reading it from
 * the files first lets `doctor` and the loader say which macOS a model folder needs, and whether this Mac has it,
 * before any work. Sources: an .mlmodelc's metadata.json (`availability.macOS`, else `specificationVersion`); an
 * .mlpackage's model spec (field 1 of the CoreML.Specification.Model protobuf), found through its Manifest.json.
 */
import { open, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';

/**
 * Oldest macOS per specification version, from coremltools 8.3's deployment targets
 * (converters/mil/_deployment_compatibility.py: macOS11 = spec 5 … macOS15 = spec 9; spec 1–4: iOS 11–13 era).
 */
const SPEC_MACOS: Readonly<Record<number, string>> = {
  1: '10.13',
  2: '10.13.2',
  3: '10.14',
  4: '10.15',
  5: '11.0',
  6: '12.0',
  7: '13.0',
  8: '14.0',
  9: '15.0',
};
const NEWEST_KNOWN_SPEC = 9;
const NEWER_THAN = 'newer than ';

export interface PackageRequirement {
  /** The package's CoreML specification version; null when the package does not say. */
  readonly specificationVersion: number | null;
  /** Oldest macOS that loads the package ("15.0"); for a spec newer than this tool knows, "newer than 15.0". */
  readonly macos: string | null;
}

/** The oldest macOS that loads a specification version (see SPEC_MACOS). */
export function macosForSpecification(version: number): string {
  return SPEC_MACOS[version] ?? `${NEWER_THAN}${SPEC_MACOS[NEWEST_KNOWN_SPEC]!}`;
}

/** Reads one package's requirement; a package whose files say nothing gives nulls, a malformed one a MODEL error. */
export async function packageRequirement(path: string): Promise<PackageRequirement> {
  try {
    if (path.endsWith('.mlmodelc')) return await compiledRequirement(path);
    if (path.endsWith('.mlpackage')) return fromSpecification(await specificationVersion(await packageSpecPath(path)));
  } catch (error) {
    if (error instanceof SoraError) throw error;
    throw new SoraError('MODEL', `${displayPath(path)}: cannot read its CoreML specification version: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  return { specificationVersion: null, macos: null };
}

function fromSpecification(version: number | null): PackageRequirement {
  return { specificationVersion: version, macos: version === null ? null : macosForSpecification(version) };
}

/** metadata.json, written by the CoreML compiler into every .mlmodelc; missing in hand-made folders (no answer). */
async function compiledRequirement(path: string): Promise<PackageRequirement> {
  const text = await readFile(join(path, 'metadata.json'), 'utf8').catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  });
  if (text === undefined) return fromSpecification(null);
  const [metadata] = JSON.parse(text) as [{ specificationVersion?: unknown; availability?: { macOS?: unknown } }?];
  const version = typeof metadata?.specificationVersion === 'number' ? metadata.specificationVersion : null;
  const declared = metadata?.availability?.macOS;
  return typeof declared === 'string' ? { specificationVersion: version, macos: declared } : fromSpecification(version);
}

interface PackageManifest {
  readonly rootModelIdentifier?: string;
  readonly itemInfoEntries?: Record<string, { readonly path?: string }>;
}

/** The model spec file an .mlpackage's Manifest.json names as its root model. */
export async function packageSpecPath(path: string): Promise<string> {
  const manifest = JSON.parse(await readFile(join(path, 'Manifest.json'), 'utf8')) as PackageManifest;
  const root = manifest.rootModelIdentifier === undefined ? undefined : manifest.itemInfoEntries?.[manifest.rootModelIdentifier];
  if (root?.path === undefined) {
    throw new SoraError('MODEL', `${displayPath(join(path, 'Manifest.json'))}: names no root model (rootModelIdentifier)`);
  }
  return join(path, 'Data', root.path);
}

/**
 * Field 1 (specificationVersion, a varint) of a CoreML.Specification.Model protobuf; null when absent (proto3: 0).
 * Serializers write fields in number order, so it is normally the first bytes; other fields are skipped by their
 * wire type without reading them, so a model spec of any size costs a few small reads.
 */
export async function specificationVersion(specPath: string): Promise<number | null> {
  const file = await open(specPath, 'r');
  try {
    const { size } = await file.stat();
    let position = 0;
    const varint = async (): Promise<number> => {
      const buffer = Buffer.alloc(10);
      const { bytesRead } = await file.read(buffer, 0, 10, position);
      let value = 0;
      for (let i = 0; i < bytesRead; i++) {
        value += (buffer[i]! & 0x7f) * 2 ** (7 * i);
        if ((buffer[i]! & 0x80) === 0) {
          position += i + 1;
          return value;
        }
      }
      throw new Error(`malformed varint at byte ${position}`);
    };
    while (position < size) {
      const key = await varint();
      const [field, wireType] = [Math.floor(key / 8), key % 8];
      if (field === 1 && wireType === 0) return await varint();
      if (wireType === 0) await varint();
      else if (wireType === 1) position += 8;
      else if (wireType === 2) {
        const length = await varint(); // read first: it moves `position` past the length itself
        position += length;
      }
      else if (wireType === 5) position += 4;
      else throw new Error(`unexpected protobuf wire type ${wireType} at byte ${position}`);
    }
    return null;
  } finally {
    await file.close();
  }
}

/** Compares dotted versions: negative, zero or positive as a is older, equal or newer than b. */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const difference = (x[i] ?? 0) - (y[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

/**
 * This Mac's macOS version ("14.5"), or null off macOS. SystemVersion.plist is what `sw_vers` reads; the Darwin
 * kernel release is the fallback (Darwin 20–24 are macOS 11–15, Darwin 25 is macOS 26).
 */
export function macosVersion(): string | null {
  if (process.platform !== 'darwin') return null;
  try {
    const plist = readFileSync('/System/Library/CoreServices/SystemVersion.plist', 'utf8');
    const version = /<key>ProductVersion<\/key>\s*<string>([\d.]+)<\/string>/.exec(plist)?.[1];
    if (version !== undefined) return version;
  } catch {
    // fall through to the kernel release
  }
  const darwin = Number(release().split('.')[0]);
  return `${darwin >= 25 ? darwin + 1 : darwin - 9}.0`;
}

export interface BlockRequirement extends PackageRequirement {
  readonly name: string;
  readonly path: string;
}

/** What a set of blocks needs: each block's requirement, and the one needing the newest macOS (if any says). */
export interface ModelRequirement {
  readonly blocks: readonly BlockRequirement[];
  readonly newest: BlockRequirement | undefined;
}

export async function modelRequirement(blocks: readonly { name: string; path: string }[]): Promise<ModelRequirement> {
  const read = await Promise.all(blocks.map(async (block) => ({ ...block, ...(await packageRequirement(block.path)) })));
  const newest = read.reduce<BlockRequirement | undefined>((best, block) => {
    if (block.macos === null) return best;
    if (best?.macos == null) return block;
    return requirementOrder(block, best) > 0 ? block : best;
  }, undefined);
  return { blocks: read, newest };
}

/** Orders requirements by macOS, a spec newer than this tool knows counting above every known one. */
function requirementOrder(a: PackageRequirement, b: PackageRequirement): number {
  return (a.specificationVersion ?? 0) - (b.specificationVersion ?? 0) || compareVersions(a.macos ?? '0', b.macos ?? '0');
}

/**
 * Whether this macOS loads a package needing `needed`. New specification versions come with major releases, so
 * for a spec newer than this tool knows, any later major release gets the benefit of the doubt (CoreML itself has
 * the last word).
 */
export function macosSatisfies(have: string, needed: string): boolean {
  if (needed.startsWith(NEWER_THAN)) return compareVersions(have.split('.')[0]!, needed.slice(NEWER_THAN.length).split('.')[0]!) > 0;
  return compareVersions(have, needed) >= 0;
}

/** The one-line refusal for a block this Mac cannot load. */
export function tooOldError(block: BlockRequirement, macos: string): SoraError {
  const spec = block.specificationVersion === null ? '' : ` (CoreML specification version ${block.specificationVersion})`;
  return new SoraError(
    'DEPENDENCY',
    `${displayPath(block.path)}: needs macOS ${block.macos ?? '?'}${spec}, this Mac runs macOS ${macos}; ` +
      'update macOS, or run an ONNX model folder with --backend onnx',
  );
}

/** Refuses, before any work, a set of blocks this macOS cannot load; the newest requirement decides. */
export async function checkMacosFor(blocks: readonly { name: string; path: string }[], macos: string): Promise<ModelRequirement> {
  const requirement = await modelRequirement(blocks);
  const newest = requirement.newest;
  if (newest?.macos != null && !macosSatisfies(macos, newest.macos)) throw tooOldError(newest, macos);
  return requirement;
}
