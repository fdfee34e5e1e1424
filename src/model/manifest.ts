/**
 * Loads a model folder: manifest.json validated against the schema and the block contract, every referenced file
 * resolved to an absolute path that provably stays inside the folder. Messages name the manifest file and the
 * field (`models/x/manifest.json: blocks[3].files[0].path: …`) so a broken export is found without a debugger.
 * A folder of the published CoreML packages needs no manifest.json: its manifest is derived (published-layout.ts).
 * A CoreML block's file entry is its package folder: `bytes` totals the files inside, `sha256` is the package digest.
 */
import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { allInOrder } from '../all-in-order.js';
import { displayPath } from '../display-path.js';
import { errnoCode, errorMessage, SoraError, type ErrorCode } from '../errors.js';
import type { BlockSource } from '../runtime/backend.js';
import { packageContentHash } from '../runtime/coreml-cache.js';
import { componentOf, contractIO, contractName, nameMismatch, requiredBlocks } from './contract.js';
import { hashMismatch, recordVerifiedFile, sha256File, startHashCheck, type HashCheck, type StartedHashCheck } from './file-hashes.js';
import { isInside } from './folder.js';
import {
  ManifestSchema,
  type BlockDescription,
  type FileRef,
  type Manifest,
  type ModelDescription,
} from './manifest-schema.js';
import {
  checkPackageStructure,
  derivePublishedManifest,
  isPackagePath,
  packageBytes,
  type PublishedLayout,
} from './published-layout.js';

export interface ModelFile {
  /** Absolute path (inside the model folder). */
  readonly path: string;
  /** Path as written in the manifest, relative to the model folder. */
  readonly relativePath: string;
  readonly bytes: number;
  /** Absent when the manifest is derived: nothing recorded a hash to check against. */
  readonly sha256?: string;
  /** Manifest field that names this file, e.g. `blocks[3].files[0]`. */
  readonly field: string;
  /** A CoreML package folder rather than a file. */
  readonly isPackage?: boolean;
}

export interface ModelBlock extends Omit<BlockDescription, 'files'> {
  readonly files: readonly ModelFile[];
  readonly graph: ModelFile;
  /** Manifest field of this block, e.g. `blocks[3]`. */
  readonly field: string;
}

/** Where the manifest came from: manifest.json, or derived from the published CoreML packages' layout. */
export type ModelSource =
  | { readonly kind: 'manifest' }
  | { readonly kind: 'published-coreml'; readonly ignored: PublishedLayout['ignored'] };

export interface Model extends Omit<ModelDescription, 'blocks' | 'tokenizer'> {
  readonly dir: string;
  /** manifest.json; for a derived manifest the folder itself, so messages name what the user can look at. */
  readonly manifestPath: string;
  readonly source: ModelSource;
  readonly tokenizer: Omit<Manifest['tokenizer'], 'files'> & { readonly files: readonly ModelFile[] };
  readonly blocks: readonly ModelBlock[];
}

export const MANIFEST_FILE = 'manifest.json';

class ManifestProblems {
  constructor(private readonly manifestPath: string) {}

  error(code: ErrorCode, field: string, detail: string, cause?: unknown): SoraError {
    return new SoraError(code, `${displayPath(this.manifestPath)}: ${field}: ${detail}`, { cause });
  }
}

export async function loadModel(folder: string): Promise<Model> {
  const dir = resolve(folder);
  await checkIsFolder(dir);
  const manifestPath = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (error) {
    const absent = errnoCode(error) === 'ENOENT';
    const published = absent ? await derivePublishedManifest(dir) : undefined;
    if (published !== undefined) return publishedModel(dir, published);
    throw new SoraError(absent ? 'MANIFEST' : 'IO', `${displayPath(manifestPath)}: cannot read: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  return manifestModel(dir, manifestPath, text);
}

async function checkIsFolder(dir: string): Promise<void> {
  const info = await stat(dir).catch((error: unknown) => {
    throw new SoraError('MANIFEST', `${displayPath(dir)}: model folder does not exist`, { cause: error });
  });
  if (!info.isDirectory()) throw new SoraError('MANIFEST', `${displayPath(dir)}: is not a folder`);
}

async function manifestModel(dir: string, manifestPath: string, text: string): Promise<Model> {
  const problems = new ManifestProblems(manifestPath);
  const manifest = parseManifest(text, manifestPath);
  checkContract(manifest, problems);
  const context = { dir, realDir: await realpath(dir), problems };
  const model = { ...manifest, dir, manifestPath, source: { kind: 'manifest' } as const };
  return assemble(model, (entry, field, isPackage) => resolveModelFile(context, entry, field, isPackage));
}

/** The derivation already measured every package and file and refused paths leading out of the folder. */
async function publishedModel(dir: string, { manifest, ignored }: PublishedLayout): Promise<Model> {
  // Our own derivation must satisfy the same contract as any manifest.json; a failure here is a bug in it.
  checkContract(manifest, new ManifestProblems(dir));
  const model = { ...manifest, dir, manifestPath: dir, source: { kind: 'published-coreml', ignored } as const };
  return assemble(model, async (entry, field, isPackage) => ({
    path: join(dir, entry.path),
    relativePath: entry.path,
    bytes: entry.bytes,
    field,
    isPackage,
  }));
}

type FileResolver = (entry: FileRef, field: string, isPackage: boolean) => Promise<ModelFile>;

async function assemble(
  model: Omit<Model, 'tokenizer' | 'blocks'> & Pick<ModelDescription, 'tokenizer' | 'blocks'>,
  resolveFile: FileResolver,
): Promise<Model> {
  // All at once (start-up time), reported in order: the first broken entry in manifest order is the one reported.
  const tokenizerTasks = model.tokenizer.files.map((entry, i) => () => resolveFile(entry, `tokenizer.files[${i}]`, false));
  const blockTasks = model.blocks.flatMap((block, i) =>
    block.files.map((entry, j) => () => resolveFile(entry, `blocks[${i}].files[${j}]`, block.format === 'coreml')),
  );
  const resolved = await allInOrder([...tokenizerTasks, ...blockTasks]);
  const tokenizerFiles = resolved.splice(0, tokenizerTasks.length);
  const blocks = model.blocks.map((block, i): ModelBlock => {
    const files = resolved.splice(0, block.files.length);
    const graph = files[block.files.findIndex((entry) => entry.role === 'graph')];
    if (graph === undefined) throw new SoraError('INTERNAL', `${block.name}: no graph file after checkContract`);
    return { ...block, files, graph, field: `blocks[${i}]` };
  });
  return { ...model, tokenizer: { ...model.tokenizer, files: tokenizerFiles }, blocks };
}

function parseManifest(text: string, manifestPath: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SoraError('MANIFEST', `${displayPath(manifestPath)}: invalid JSON: ${errorMessage(error)}`, { cause: error });
  }
  const parsed = ManifestSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const [first, ...rest] = parsed.error.issues;
  const more = rest.length > 0 ? ` (and ${rest.length} more problem${rest.length > 1 ? 's' : ''})` : '';
  throw new SoraError(
    'MANIFEST',
    `${displayPath(manifestPath)}: ${fieldOf(first?.path ?? [])}: ${first?.message ?? 'invalid'}${more}`,
  );
}

function fieldOf(path: readonly PropertyKey[]): string {
  if (path.length === 0) return 'top level';
  return path
    .map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`))
    .join('');
}

/** Checks that need more than one field: block names, I/O names and the complete set of blocks. */
function checkContract(manifest: ModelDescription, problems: ManifestProblems): void {
  const seen = new Map<string, number>();
  for (const [i, block] of manifest.blocks.entries()) {
    const field = `blocks[${i}]`;
    const first = seen.get(block.name);
    if (first !== undefined) {
      throw problems.error('MANIFEST', `${field}.name`, `duplicate block name "${block.name}" (also blocks[${first}])`);
    }
    seen.set(block.name, i);
    checkBlock(block, field, problems);
  }

  const { t5, stdit } = manifest.architecture;
  const sizes = `architecture.t5.num_layers ${t5.num_layers}, architecture.stdit.depth ${stdit.depth}`;
  const required = requiredBlocks(t5.num_layers, stdit.depth);
  const missing = required.find((block) => !seen.has(block.name));
  if (missing !== undefined) throw problems.error('MANIFEST', 'blocks', `missing block "${missing.name}" (${sizes})`);
  const extra = manifest.blocks.findIndex((block) => !required.some((r) => r.name === block.name));
  if (extra >= 0) {
    throw problems.error('MANIFEST', `blocks[${extra}].name`, `"${manifest.blocks[extra]?.name}" is not a block of this model (${sizes})`);
  }

  const { defaults } = manifest;
  if (!defaults.resolutions.includes(defaults.resolution)) {
    throw problems.error('MANIFEST', 'defaults.resolution', `"${defaults.resolution}" is not one of defaults.resolutions`);
  }
  if (!defaults.numFramesChoices.includes(defaults.numFrames)) {
    throw problems.error('MANIFEST', 'defaults.numFrames', `${defaults.numFrames} is not one of defaults.numFramesChoices`);
  }
}

function checkBlock(block: BlockDescription, field: string, problems: ManifestProblems): void {
  const component = componentOf(block.kind);
  if (block.component !== component) {
    throw problems.error('MANIFEST', `${field}.component`, `is "${block.component}", but kind ${block.kind} belongs to "${component}"`);
  }
  const name = contractName(block.kind, block.index);
  if (name === undefined) throw problems.error('MANIFEST', `${field}.index`, `${block.kind} has no block ${block.index}`);
  if (block.name !== name) {
    throw problems.error('MANIFEST', `${field}.name`, `is "${block.name}", but ${block.kind} ${block.index} is named "${name}"`);
  }
  const io = contractIO(block.kind, block.index);
  for (const side of ['inputs', 'outputs'] as const) {
    const mismatch = nameMismatch(io[side], block[side].map((spec) => spec.name));
    if (mismatch !== undefined) throw problems.error('MANIFEST', `${field}.${side}`, `${mismatch} for ${name}`);
  }
  const graphs = block.files.filter((file) => file.role === 'graph').length;
  if (graphs !== 1) {
    throw problems.error('MANIFEST', `${field}.files`, `needs exactly one file with role "graph", found ${graphs}`);
  }
  if (block.format === 'coreml' && (block.files.length !== 1 || !isPackagePath(block.files[0]?.path ?? ''))) {
    throw problems.error('MANIFEST', `${field}.files`, 'a coreml block lists exactly one .mlpackage or .mlmodelc folder');
  }
}

interface FolderContext {
  readonly dir: string;
  readonly realDir: string;
  readonly problems: ManifestProblems;
}

async function resolveModelFile(context: FolderContext, entry: FileRef, field: string, isPackage: boolean): Promise<ModelFile> {
  const { dir, realDir, problems } = context;
  const path = join(dir, entry.path);
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') throw problems.error('MODEL', `${field}.path`, `${entry.path} does not exist`, error);
    throw problems.error('IO', `${field}.path`, `${entry.path}: ${errorMessage(error)}`, error);
  }
  // realpath resolves every symlink, so a link inside the folder that points out is caught here.
  if (!isInside(realDir, real)) {
    throw problems.error('MANIFEST', `${field}.path`, `${entry.path} escapes the model folder (it resolves to ${real})`);
  }
  const info = await stat(real);
  if (isPackage ? !info.isDirectory() : !info.isFile()) {
    throw problems.error('MODEL', `${field}.path`, `${entry.path} is not a ${isPackage ? 'package folder' : 'file'}`);
  }
  // Every file inside a package is resolved through its symlinks: one leading out of the folder is refused.
  const size = isPackage ? await packageBytes(path, realDir) : info.size;
  if (size !== entry.bytes) {
    throw problems.error('MODEL', `${field}.bytes`, `${entry.path} has ${size} bytes, the manifest says ${entry.bytes}`);
  }
  return { path, relativePath: entry.path, bytes: entry.bytes, sha256: entry.sha256, field, isPackage };
}

export interface VerifyResult {
  /** sha256 of every file; or, for a derived manifest (no hashes recorded), presence and package structure. */
  readonly checked: 'sha256' | 'structure';
  readonly files: number;
  readonly bytes: number;
}

/**
 * Checks the sha256 of every file the manifest names (a weight file shared by two blocks is read once), and the
 * digest of every CoreML package; a derived manifest has none to compare, so its packages are checked for the files
 * every CoreML package holds instead. CoreML packages are never opened here (that needs macOS).
 */
export async function verifyModel(model: Model, onFile?: (file: ModelFile) => void): Promise<VerifyResult> {
  if (model.source.kind === 'published-coreml') {
    return { checked: 'structure', ...(await checkPackageStructure(model, onFile)) };
  }
  const entries = modelFiles(model);
  const hashes = new Map<string, string>();
  const mismatches: { file: ModelFile; actual: string }[] = [];
  let bytes = 0;
  for (const file of entries) {
    let actual = hashes.get(file.path);
    if (actual === undefined) {
      onFile?.(file);
      actual = file.isPackage === true ? await packageContentHash(file.path) : await sha256File(file.path);
      hashes.set(file.path, actual);
      bytes += file.bytes;
    }
    if (actual !== file.sha256) mismatches.push({ file, actual });
    else await recordVerifiedFile(file.path, actual);
  }
  const [first, ...rest] = mismatches;
  if (first !== undefined) {
    const more = rest.length > 0 ? ` (and ${rest.length} more mismatching file entr${rest.length > 1 ? 'ies' : 'y'})` : '';
    throw hashMismatch(model.manifestPath, first.file, first.actual, more);
  }
  await checkPackageStructure(model);
  return { checked: 'sha256', files: hashes.size, bytes };
}

function modelFiles(model: Model): ModelFile[] {
  return [...model.tokenizer.files, ...model.blocks.flatMap((block) => block.files)];
}

/**
 * Before a model is used: sizes were compared when it loaded; contents are hashed on first use of each file version
 * and remembered (src/model/file-hashes.ts). A derived manifest records no hashes: nothing to compare.
 */
export function checkModelHashes(model: Model, cacheDir?: string): Promise<HashCheck> {
  return startModelHashCheck(model, cacheDir).complete();
}

/** checkModelHashes with the cache look-ups started now and the hashing left to complete() (see startHashCheck). */
export function startModelHashCheck(model: Model, cacheDir?: string): StartedHashCheck {
  return startHashCheck(model.manifestPath, modelFiles(model), cacheDir);
}

/** What the backend needs to load a block and check it against the contract. */
export function blockSource(block: ModelBlock): BlockSource {
  const key = contentKey(block);
  return {
    name: block.name,
    format: block.format,
    path: block.graph.path,
    weightBytes: block.weightBytes,
    inputs: block.inputs.map((spec) => spec.name),
    outputs: block.outputs.map((spec) => spec.name),
    ...(block.computeUnits !== undefined && { computeUnits: block.computeUnits }),
    ...(key !== undefined && { contentKey: key }),
  };
}

function contentKey(block: ModelBlock): string | undefined {
  if (block.files.some((file) => file.sha256 === undefined)) return undefined;
  return createHash('sha256')
    .update(block.files.map((file) => file.sha256).join('\n'))
    .digest('hex');
}
