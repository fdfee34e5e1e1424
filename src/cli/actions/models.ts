/** `models inspect | verify | list | make-synthetic | cache prune`: look at model folders, or make one for benchmarking. */
import { execFile } from 'node:child_process';
import { readdir, rename, rm } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import * as z from 'zod';
import { displayPath } from '../../display-path.js';
import { errorMessage, SoraError } from '../../errors.js';
import { COMPONENTS, type Component } from '../../model/contract.js';
import { loadModel, MANIFEST_FILE, verifyModel, type Model, type ModelFile } from '../../model/manifest.js';
import { MODEL_FOLDER_OUTPUT } from '../../model/replaceable-model.js';
import { packagePath } from '../../package-root.js';
import { checkModelAgainstContract } from '../../pipeline/contract-check.js';
import { distinctWeightBytes } from '../../pipeline/memory-estimates.js';
import { OnnxBackend } from '../../runtime/onnx-backend.js';
import { claimPath } from '../../video/claim.js';
import { checkReplaceable } from '../../video/replaceable.js';
import { cliContext, type CliContext } from '../context.js';
import { MODELS_ENV, SHIPPED_MODELS, SYNTHETIC_PRESETS } from '../commands/models.js';
import { integerFlag, parseFlags } from '../flags.js';
import { formatBytes, formatTable } from '../format.js';

const execFileAsync = promisify(execFile);

interface ComponentSummary {
  readonly component: Component;
  readonly blocks: number;
  readonly kinds: Record<string, number>;
  readonly dtypes: string[];
  readonly bytes: number;
  readonly weightBytes: number;
}

interface ModelSummary {
  readonly name: string;
  readonly description: string;
  readonly dir: string;
  readonly blocks: number;
  readonly bytes: number;
  readonly components: ComponentSummary[];
  readonly tokenizer: { readonly files: number; readonly bytes: number };
  readonly defaults: Model['defaults'];
  readonly architecture: Model['architecture'];
  readonly source: Model['source'];
  readonly quirks?: Model['quirks'];
  readonly checkpoints?: Model['checkpoints'];
  readonly vocabulary?: Model['vocabulary'];
}

/** Bytes on disk, each file once (our ST and TDTM blocks share their weight file). */
function uniqueBytes(files: readonly ModelFile[]): number {
  return [...new Map(files.map((file) => [file.path, file.bytes])).values()].reduce((sum, bytes) => sum + bytes, 0);
}

function summarizeModel(model: Model): ModelSummary {
  const components = COMPONENTS.map((component) => {
    const blocks = model.blocks.filter((block) => block.component === component);
    const kinds: Record<string, number> = {};
    for (const block of blocks) kinds[block.kind] = (kinds[block.kind] ?? 0) + 1;
    return {
      component,
      blocks: blocks.length,
      kinds,
      dtypes: [...new Set(blocks.map((block) => block.dtype))],
      bytes: uniqueBytes(blocks.flatMap((block) => block.files)),
      weightBytes: distinctWeightBytes(blocks),
    };
  });
  return {
    name: model.name,
    description: model.description,
    dir: model.dir,
    blocks: model.blocks.length,
    bytes: uniqueBytes([...model.tokenizer.files, ...model.blocks.flatMap((block) => block.files)]),
    components,
    tokenizer: { files: model.tokenizer.files.length, bytes: uniqueBytes(model.tokenizer.files) },
    defaults: model.defaults,
    architecture: model.architecture,
    source: model.source,
    ...(model.quirks && { quirks: model.quirks }),
    ...(model.checkpoints && { checkpoints: model.checkpoints }),
    ...(model.vocabulary && { vocabulary: model.vocabulary }),
  };
}

function formatSummary(summary: ModelSummary): string {
  const rows = [
    ['component', 'blocks', 'kinds', 'dtype', 'bytes'],
    ...summary.components.map((c) => [
      c.component,
      String(c.blocks),
      Object.entries(c.kinds)
        .map(([kind, count]) => `${kind} ${count}`)
        .join(', '),
      c.dtypes.join(', '),
      formatBytes(c.bytes),
    ]),
    ['tokenizer', '-', `${summary.tokenizer.files} files`, '-', formatBytes(summary.tokenizer.bytes)],
    ['total', String(summary.blocks), '', '', formatBytes(summary.bytes)],
  ];
  const { defaults: d, architecture: a } = summary;
  return [
    summary.description === '' ? summary.name : `${summary.name}: ${summary.description}`,
    `folder: ${displayPath(summary.dir)}`,
    '',
    formatTable(rows, [1, 4]),
    '',
    `architecture: t5 ${a.t5.num_layers} layers, d_model ${a.t5.d_model}, ${a.t5.num_heads} heads; ` +
      `stdit depth ${a.stdit.depth}, hidden ${a.stdit.hidden_size}, ${a.stdit.num_heads} heads`,
    `defaults: ${d.steps} steps, cfg ${d.cfgScale}, ${d.fps} fps, aesthetic ${d.aestheticScore}, ` +
      `${d.resolution}, ${d.numFrames} frames`,
    `choices: resolutions ${d.resolutions.join(', ')}; frames ${d.numFramesChoices.join(', ')}`,
    ...(summary.quirks === undefined ? [] : [formatQuirks(summary.quirks)]),
    ...(summary.checkpoints === undefined ? [] : [formatCheckpoints(summary.checkpoints)]),
    ...(summary.vocabulary === undefined ? [] : [formatVocabulary(summary.vocabulary)]),
    ...(summary.source.kind === 'published-coreml' && summary.source.ignored.length > 0
      ? [`ignored (not blocks of the contract): ${summary.source.ignored.join(', ')}`]
      : []),
  ].join('\n');
}

function formatVocabulary(vocabulary: NonNullable<Model['vocabulary']>): string {
  const objects = vocabulary.maxObjects === 1 ? 'one object' : `up to ${vocabulary.maxObjects} objects`;
  return `vocabulary (${vocabulary.words.length} words, ${objects} of ${vocabulary.objectWords.join(', ')}): ${vocabulary.words.join(' ')}`;
}

function formatQuirks(quirks: NonNullable<Model['quirks']>): string {
  const rows = quirks.maxCaptionRows;
  return (
    `quirks: caption rows ≤ ${rows} (prompt ≤ ${rows / 2 - 1} tokens + EOS); ` +
    `${quirks.evenTdtmOnly ? 'TDTM needs an even number of latent frames; ' : ''}` +
    `the authors' app used timestep transform ${quirks.appTimestepTransform}`
  );
}

function formatCheckpoints(checkpoints: NonNullable<Model['checkpoints']>): string {
  const origin = ({ component, repo, revision, commit, folder }: (typeof checkpoints)[number]): string =>
    repo === undefined ? `${component} ${folder ?? '?'}` : `${component} ${repo}@${commit ?? revision}${revision !== commit ? ` (${revision})` : ''}`;
  return `converted from: ${checkpoints.map(origin).join(', ')}`;
}

/** What `models inspect` runs (commands/models.ts defines the models commands). */
export async function inspectAction(dir: string, self: Command): Promise<void> {
  await inspect(dir, cliContext(self));
}

/** What `models verify` runs. */
export async function verifyAction(dir: string, self: Command): Promise<void> {
  await verify(dir, cliContext(self));
}

/** What `models list` runs. */
export async function listAction(self: Command): Promise<void> {
  await list(cliContext(self));
}

/** What `models make-synthetic` runs. */
export async function makeSyntheticAction(options: Record<string, unknown>, self: Command): Promise<void> {
  await makeSynthetic(options, cliContext(self));
}

async function inspect(dir: string, context: CliContext): Promise<void> {
  const summary = summarizeModel(await loadModel(dir));
  context.result(formatSummary(summary), summary);
}

async function verify(dir: string, context: CliContext): Promise<void> {
  const model = await loadModel(dir);
  const checked = await verifyModel(model, (file) => context.status(`check ${file.relativePath}`));
  if (checked.checked === 'structure') {
    const text =
      `${displayPath(model.dir)}: ok (presence and structure only)\n` +
      `${model.blocks.length} CoreML packages and ${model.tokenizer.files.length} tokenizer files present ` +
      `(${formatBytes(checked.bytes)}); no sha256 available, the manifest is derived from the folder; ` +
      'blocks not opened (CoreML packages need --backend coreml on macOS)';
    context.result(text, { ok: true, dir: model.dir, ...checked, blocks: model.blocks.length });
    return;
  }
  const packages = model.blocks.filter((block) => block.format !== 'onnx').length;
  // A converted CoreML folder cannot run here, so its packages are checked by digest only.
  if (packages === 0) await checkEveryBlock(model, context);
  const text =
    `${displayPath(model.dir)}: ok\n` +
    `${checked.files} files (${formatBytes(checked.bytes)}) match their sha256` +
    (packages > 0
      ? ` (a CoreML package: its package digest); ${packages} CoreML packages not opened (they need --backend coreml on macOS)`
      : `; ${model.blocks.length} blocks open in ONNX Runtime and take and return the contract's names, dtypes and ` +
        `shapes for this architecture; the tokenizer's ids fit the T5 embedding`);
  context.result(text, { ok: true, dir: model.dir, ...checked, blocks: model.blocks.length });
}

async function checkEveryBlock(model: Model, context: CliContext): Promise<void> {
  // Mapped weights make each open cheap (no copy, no prepacking); each block then runs once on a small request.
  const backend = new OnnxBackend({ logger: context.logger, mmapWeights: true });
  try {
    await checkModelAgainstContract(model, backend, context.logger, (block) => context.status(`check ${block.name}`));
  } finally {
    await backend.close();
  }
}

interface ListedModel {
  readonly folder: string;
  /** `shipped`, or the environment variable that named the folder. */
  readonly source: string;
  readonly ok: boolean;
  readonly name?: string;
  readonly blocks?: number;
  readonly bytes?: number;
  readonly error?: string;
}

/** Model folders (with a manifest.json) at `root` itself or one level below it, by name. */
async function modelFolders(root: string): Promise<string[]> {
  const hasManifest = async (folder: string): Promise<boolean> =>
    (await readdir(folder).catch(() => [] as string[])).includes(MANIFEST_FILE);
  if (await hasManifest(root)) return [root];
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  const folders = entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name));
  const found: string[] = [];
  for (const entry of folders) if (await hasManifest(join(root, entry.name))) found.push(join(root, entry.name));
  return found;
}

async function list(context: CliContext): Promise<void> {
  const known = (process.env[MODELS_ENV] ?? '').split(delimiter).filter((dir) => dir !== '');
  const roots = [{ root: SHIPPED_MODELS, source: 'shipped' }, ...known.map((dir) => ({ root: resolve(dir), source: MODELS_ENV }))];
  const listed: ListedModel[] = [];
  const seen = new Set<string>();
  for (const { root, source } of roots) {
    for (const folder of await modelFolders(root)) {
      if (seen.has(folder)) continue;
      seen.add(folder);
      try {
        const summary = summarizeModel(await loadModel(folder));
        listed.push({ folder, source, ok: true, name: summary.name, blocks: summary.blocks, bytes: summary.bytes });
      } catch (error) {
        listed.push({ folder, source, ok: false, error: errorMessage(error) });
      }
    }
  }
  const text =
    listed.length === 0
      ? `no model folders in ${roots.map((r) => displayPath(r.root)).join(', ')}`
      : formatTable(
          [
            ['folder', 'source', 'name', 'blocks', 'bytes', 'status'],
            ...listed.map((m) => [
              displayPath(m.folder),
              m.source,
              m.name ?? '-',
              m.blocks === undefined ? '-' : String(m.blocks),
              m.bytes === undefined ? '-' : formatBytes(m.bytes),
              m.ok ? 'ok' : `invalid: ${m.error}`,
            ]),
          ],
          [3, 4],
        );
  context.result(text, listed);
}

/** Preset → the generator's --shape. */
const SYNTHETIC_SHAPES: Readonly<Record<(typeof SYNTHETIC_PRESETS)[number], string>> = { 'opensora-1.2': 'paper' };
const SYNTHETIC_SCRIPT = packagePath('scripts', 'make_synthetic_model.py');

const SyntheticFlags = z.object({
  preset: z.enum(SYNTHETIC_PRESETS, `must be one of: ${SYNTHETIC_PRESETS.join(', ')}`),
  output: z.string().min(1, 'must name a folder'),
  depth: integerFlag(1, 1000, 'must be an integer from 1 to 1000').optional(),
  // 16 heads whose size must be even for the rotary embedding of the temporal attention.
  hidden: integerFlag(32, 65536, 'must be a multiple of 32 from 32 to 65536')
    .refine((value) => value % 32 === 0, 'must be a multiple of 32 from 32 to 65536')
    .optional(),
  overwrite: z.boolean().optional(),
});

/**
 * Runs scripts/make_synthetic_model.py (the model code lives in Python) into the claim's hidden folder beside the
 * target, renamed into place once the manifest loads, so a failed or interrupted run leaves nothing that looks like
 * a model. An existing folder is replaced only with --overwrite and only if it is a model folder and nothing more.
 */
async function makeSynthetic(options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(SyntheticFlags, options);
  const target = resolve(flags.output);
  const overwrite = flags.overwrite === true;
  const claim = await claimPath(target, { command: 'models make-synthetic' });
  try {
    await checkReplaceable(target, MODEL_FOLDER_OUTPUT, overwrite);
    const python = modelToolingPython();
    const partial = claim.partPath;
    const args = [SYNTHETIC_SCRIPT, '--out', partial, '--shape', SYNTHETIC_SHAPES[flags.preset]];
    if (flags.depth !== undefined) args.push('--depth', String(flags.depth));
    if (flags.hidden !== undefined) args.push('--hidden', String(flags.hidden));
    context.status(`writing ${displayPath(target)} with ${python} (a paper-sized model takes minutes)`);
    await runScript(python, args, context);
    const model = await loadModel(partial);
    // Checked again: the script ran for minutes, and the folder it replaces must still be only a model.
    await checkReplaceable(target, MODEL_FOLDER_OUTPUT, overwrite);
    await rm(target, { recursive: true, force: true });
    await rename(partial, target);
    const summary = summarizeModel({ ...model, dir: target });
    const text = `wrote ${displayPath(target)}: ${summary.name}, ${summary.blocks} blocks, ${formatBytes(summary.bytes)}`;
    context.result(text, { ...summary, dir: target });
  } finally {
    claim.release();
  }
}

/** The interpreter the model scripts run with: PYTHON, else /usr/bin/python3 (Debian's python3-torch). */
function modelToolingPython(): string {
  return process.env.PYTHON || '/usr/bin/python3';
}

/** The script's own exit status for a missing module (scripts/sora/dependencies.py), the CLI's DEPENDENCY. */
const PYTHON_DEPENDENCY_EXIT = 8;
const PYTHON_PACKAGES = 'python3-torch python3-onnx python3-numpy python3-jsonschema';

/**
 * Runs the generator, which checks every Python module it needs before any work (scripts/sora/dependencies.py) and
 * then says which are missing, with the packages that provide them.
 */
async function runScript(python: string, args: readonly string[], context: CliContext): Promise<void> {
  try {
    const { stdout } = await execFileAsync(python, [...args], { maxBuffer: 64 << 20 });
    context.logger.debug({ stdout: stdout.trim() }, 'model script done');
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    const reason = (stderr.split('\n').pop() || errorMessage(error)).replace(/^error: /, '');
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SoraError(
        'DEPENDENCY',
        `models make-synthetic needs Python 3 with torch, onnx, numpy and jsonschema: ${python} not found; install ` +
          `them (Debian/Ubuntu: apt-get install ${PYTHON_PACKAGES}) or set PYTHON`,
        { cause: error },
      );
    }
    const missingModules = (error as { code?: unknown }).code === PYTHON_DEPENDENCY_EXIT;
    throw new SoraError(missingModules ? 'DEPENDENCY' : 'INTERNAL', `models make-synthetic: ${reason}`, { cause: error });
  }
}
