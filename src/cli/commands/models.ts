/** `models inspect | verify | list`: look at model folders without generating anything. */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { displayPath } from '../../display-path.js';
import { errorMessage } from '../../errors.js';
import { COMPONENTS, type Component } from '../../model/contract.js';
import { blockSource, loadModel, MANIFEST_FILE, verifyModel, type Model, type ModelFile } from '../../model/manifest.js';
import { OnnxBackend } from '../../runtime/onnx-backend.js';
import { cliContext, type CliContext } from '../context.js';
import { formatBytes, formatTable } from '../format.js';

const MODEL_FOLDER = 'model folder (holds manifest.json, or the published On-device Sora CoreML packages)';

/** The model folders shipped with the package (models/ beside src/ and dist/). */
const SHIPPED_MODELS = fileURLToPath(new URL('../../../models/', import.meta.url));

export function register(program: Command): void {
  const models = program.command('models').description('inspect, verify and list model folders');
  models
    .command('inspect')
    .description('show the components, block counts, sizes, dtypes and defaults of a model folder')
    .argument('<dir>', MODEL_FOLDER)
    .action(async (dir: string, _options: unknown, command: Command) => inspect(dir, cliContext(command)));
  models
    .command('verify')
    .description(
      'check the sha256 of every file, then open every block in ONNX Runtime against the contract ' +
        '(published CoreML packages: presence and package structure only)',
    )
    .argument('<dir>', MODEL_FOLDER)
    .action(async (dir: string, _options: unknown, command: Command) => verify(dir, cliContext(command)));
  models
    .command('list')
    .description(`list the model folders shipped in ${displayPath(SHIPPED_MODELS)}`)
    .action(async (_options: unknown, command: Command) => list(cliContext(command)));
}

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
      weightBytes: blocks.reduce((sum, block) => sum + block.weightBytes, 0),
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
    ...(summary.source.kind === 'published-coreml' && summary.source.ignored.length > 0
      ? [`ignored (not blocks of the contract): ${summary.source.ignored.join(', ')}`]
      : []),
  ].join('\n');
}

function formatQuirks(quirks: NonNullable<Model['quirks']>): string {
  const rows = quirks.maxCaptionRows;
  return (
    `quirks: caption rows ≤ ${rows} (prompt ≤ ${rows / 2 - 1} tokens + EOS); ` +
    `${quirks.evenTdtmOnly ? 'TDTM needs an even number of latent frames; ' : ''}` +
    `the authors' app used timestep transform ${quirks.appTimestepTransform}`
  );
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
  await openEveryBlock(model, context);
  const text =
    `${displayPath(model.dir)}: ok\n` +
    `${checked.files} files (${formatBytes(checked.bytes)}) match their sha256; ` +
    `${model.blocks.length} blocks open in ONNX Runtime with the contract's inputs and outputs`;
  context.result(text, { ok: true, dir: model.dir, ...checked, blocks: model.blocks.length });
}

async function openEveryBlock(model: Model, context: CliContext): Promise<void> {
  // Mapped weights make each open cheap (no copy, no prepacking); the check is only that ORT accepts the graph.
  const backend = new OnnxBackend({ logger: context.logger, mmapWeights: true });
  try {
    for (const block of model.blocks) {
      context.status(`open ${block.name}`);
      await backend.unload(await backend.load(blockSource(block)));
    }
  } finally {
    await backend.close();
  }
}

interface ListedModel {
  readonly folder: string;
  readonly ok: boolean;
  readonly name?: string;
  readonly blocks?: number;
  readonly bytes?: number;
  readonly error?: string;
}

async function list(context: CliContext): Promise<void> {
  const entries = await readdir(SHIPPED_MODELS, { withFileTypes: true }).catch(() => []);
  const listed: ListedModel[] = [];
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const folder = join(SHIPPED_MODELS, entry.name);
    const hasManifest = (await readdir(folder)).includes(MANIFEST_FILE);
    if (!hasManifest) continue;
    try {
      const summary = summarizeModel(await loadModel(folder));
      listed.push({ folder, ok: true, name: summary.name, blocks: summary.blocks, bytes: summary.bytes });
    } catch (error) {
      listed.push({ folder, ok: false, error: errorMessage(error) });
    }
  }
  const text =
    listed.length === 0
      ? `no model folders in ${displayPath(SHIPPED_MODELS)}/`
      : formatTable(
          [
            ['folder', 'name', 'blocks', 'bytes', 'status'],
            ...listed.map((m) => [
              displayPath(m.folder),
              m.name ?? '-',
              m.blocks === undefined ? '-' : String(m.blocks),
              m.bytes === undefined ? '-' : formatBytes(m.bytes),
              m.ok ? 'ok' : `invalid: ${m.error}`,
            ]),
          ],
          [2, 3],
        );
  context.result(text, listed);
}
