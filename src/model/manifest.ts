/**
 * Loads a model folder: manifest.json validated against the schema and the block contract, every referenced file
 * resolved to an absolute path that provably stays inside the folder. Messages name the manifest file and the
 * field (`models/x/manifest.json: blocks[3].files[0].path: …`) so a broken export is found without a debugger.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError, type ErrorCode } from '../errors.js';
import type { BlockSource } from '../runtime/backend.js';
import { componentOf, contractIO, contractName, nameMismatch, requiredBlocks } from './contract.js';
import { ManifestSchema, type Manifest, type ManifestBlock, type ManifestFile } from './manifest-schema.js';

export interface ModelFile {
  /** Absolute path (inside the model folder). */
  readonly path: string;
  /** Path as written in the manifest, relative to the model folder. */
  readonly relativePath: string;
  readonly bytes: number;
  readonly sha256: string;
  /** Manifest field that names this file, e.g. `blocks[3].files[0]`. */
  readonly field: string;
}

export interface ModelBlock extends Omit<ManifestBlock, 'files'> {
  readonly files: readonly ModelFile[];
  readonly graph: ModelFile;
  /** Manifest field of this block, e.g. `blocks[3]`. */
  readonly field: string;
}

export interface Model extends Omit<Manifest, 'blocks' | 'tokenizer'> {
  readonly dir: string;
  readonly manifestPath: string;
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
  const manifestPath = join(dir, MANIFEST_FILE);
  const problems = new ManifestProblems(manifestPath);
  const manifest = parseManifest(await readManifestText(dir, manifestPath), manifestPath);
  checkContract(manifest, problems);

  const realDir = await realpath(dir);
  const resolveFile = (entry: ManifestFile, field: string): Promise<ModelFile> =>
    resolveModelFile({ dir, realDir, problems }, entry, field);

  // Sequential on purpose: the first broken entry in manifest order is the one reported.
  const tokenizerFiles: ModelFile[] = [];
  for (const [i, entry] of manifest.tokenizer.files.entries()) {
    tokenizerFiles.push(await resolveFile(entry, `tokenizer.files[${i}]`));
  }
  const blocks: ModelBlock[] = [];
  for (const [i, block] of manifest.blocks.entries()) {
    const files: ModelFile[] = [];
    for (const [j, entry] of block.files.entries()) files.push(await resolveFile(entry, `blocks[${i}].files[${j}]`));
    const graph = files[block.files.findIndex((entry) => entry.role === 'graph')];
    if (graph === undefined) throw new SoraError('INTERNAL', `${block.name}: no graph file after checkContract`);
    blocks.push({ ...block, files, graph, field: `blocks[${i}]` });
  }
  return { ...manifest, dir, manifestPath, tokenizer: { ...manifest.tokenizer, files: tokenizerFiles }, blocks };
}

async function readManifestText(dir: string, manifestPath: string): Promise<string> {
  const info = await stat(dir).catch((error: unknown) => {
    throw new SoraError('MANIFEST', `${displayPath(dir)}: model folder does not exist`, { cause: error });
  });
  if (!info.isDirectory()) throw new SoraError('MANIFEST', `${displayPath(dir)}: is not a folder`);
  try {
    return await readFile(manifestPath, 'utf8');
  } catch (error) {
    const code = errnoCode(error) === 'ENOENT' ? 'MANIFEST' : 'IO';
    throw new SoraError(code, `${displayPath(manifestPath)}: cannot read: ${errorMessage(error)}`, { cause: error });
  }
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
function checkContract(manifest: Manifest, problems: ManifestProblems): void {
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

function checkBlock(block: ManifestBlock, field: string, problems: ManifestProblems): void {
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
}

interface FolderContext {
  readonly dir: string;
  readonly realDir: string;
  readonly problems: ManifestProblems;
}

async function resolveModelFile(context: FolderContext, entry: ManifestFile, field: string): Promise<ModelFile> {
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
  if (!info.isFile()) throw problems.error('MODEL', `${field}.path`, `${entry.path} is not a file`);
  if (info.size !== entry.bytes) {
    throw problems.error('MODEL', `${field}.bytes`, `${entry.path} has ${info.size} bytes, the manifest says ${entry.bytes}`);
  }
  return { path, relativePath: entry.path, bytes: entry.bytes, sha256: entry.sha256, field };
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !isAbsolute(rel) && rel.split(sep)[0] !== '..';
}

export interface VerifyResult {
  readonly files: number;
  readonly bytes: number;
}

/** Checks the sha256 of every file the manifest names (a weight file shared by two blocks is read once). */
export async function verifyModel(model: Model, onFile?: (file: ModelFile) => void): Promise<VerifyResult> {
  const entries = [...model.tokenizer.files, ...model.blocks.flatMap((block) => block.files)];
  const hashes = new Map<string, string>();
  const mismatches: { file: ModelFile; actual: string }[] = [];
  let bytes = 0;
  for (const file of entries) {
    let actual = hashes.get(file.path);
    if (actual === undefined) {
      onFile?.(file);
      actual = await sha256File(file.path);
      hashes.set(file.path, actual);
      bytes += file.bytes;
    }
    if (actual !== file.sha256) mismatches.push({ file, actual });
  }
  const [first, ...rest] = mismatches;
  if (first !== undefined) {
    const more = rest.length > 0 ? ` (and ${rest.length} more mismatching file entr${rest.length > 1 ? 'ies' : 'y'})` : '';
    throw new ManifestProblems(model.manifestPath).error(
      'MODEL',
      `${first.file.field}.sha256`,
      `${first.file.relativePath} has sha256 ${first.actual}, the manifest says ${first.file.sha256}${more}`,
    );
  }
  return { files: hashes.size, bytes };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** What the backend needs to load a block and check it against the contract. */
export function blockSource(block: ModelBlock): BlockSource {
  return {
    name: block.name,
    path: block.graph.path,
    weightBytes: block.weightBytes,
    inputs: block.inputs.map((spec) => spec.name),
    outputs: block.outputs.map((spec) => spec.name),
  };
}

function errnoCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

