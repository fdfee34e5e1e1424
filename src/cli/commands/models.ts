/**
 * `models inspect|verify|list|make-synthetic|pull|convert|compress|cache prune`: model folders. The work is in
 * ../actions/models.ts, models-pull.ts, models-compress.ts and models-cache.ts, loaded when a subcommand runs.
 */
import { delimiter } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_UNUSED_DAYS } from '../../cache-age.js';
import { DTYPES, FORMATS } from '../../convert/model-formats.js';
import { MODEL_IDS } from '../../convert/opensora-recipe.js';
import { displayPath } from '../../display-path.js';
import { packagePath } from '../../package-root.js';
import { defaultCoreMLCacheDir } from '../../runtime/coreml-cache-dir.js';

const MODEL_FOLDER = 'model folder (holds manifest.json, or the published On-device Sora CoreML packages)';
/** Folders of model folders that `models list` shows besides the shipped ones. */
export const MODELS_ENV = 'ONDEVICE_SORA_MODELS';
/** The package's models/ folder. */
export const SHIPPED_MODELS = packagePath('models/');
export const SYNTHETIC_PRESETS = ['opensora-1.2'] as const;

export function register(program: Command): void {
  const models = program.command('models').description('inspect, verify and list model folders');
  models
    .command('inspect')
    .description('show the components, block counts, sizes, dtypes and defaults of a model folder')
    .argument('<dir>', MODEL_FOLDER)
    .action(async (dir: string, _options: unknown, self: Command) => {
      const { inspectAction } = await import('../actions/models.js');
      await inspectAction(dir, self);
    });
  models
    .command('verify')
    .description(
      'check the sha256 of every file (CoreML packages: their package digest), then open every ONNX block in ONNX ' +
        'Runtime and run it once on a small request, checking names, dtypes and shapes against the contract for its ' +
        'architecture, and the tokenizer against the T5 embedding (CoreML packages: presence and structure only)',
    )
    .argument('<dir>', MODEL_FOLDER)
    .action(async (dir: string, _options: unknown, self: Command) => {
      const { verifyAction } = await import('../actions/models.js');
      await verifyAction(dir, self);
    });
  models
    .command('list')
    .description(
      `list the model folders shipped in ${displayPath(SHIPPED_MODELS)} and those under the folders named in ` +
        `${MODELS_ENV} (${delimiter}-separated)`,
    )
    .action(async (_options: unknown, self: Command) => {
      const { listAction } = await import('../actions/models.js');
      await listAction(self);
    });
  models
    .command('make-synthetic')
    .description(
      'write a model folder with paper-shaped random weights for benchmarking (STDiT3-XL/2: 28 block pairs, ' +
        'hidden 1152, ~4.8 GB; T5, VAE and tokenizer from the tiny model); needs Python with torch and onnx',
    )
    .requiredOption('--preset <name>', SYNTHETIC_PRESETS.join(' | '))
    .requiredOption('-o, --output <dir>', 'model folder to write (must not exist unless --overwrite)')
    .option('--depth <n>', 'STDiT block pairs (default: the preset\'s, 28)')
    .option('--hidden <n>', 'STDiT hidden size, a multiple of 32 (default: the preset\'s, 1152)')
    .option('--overwrite', 'replace an existing model folder (one holding its manifest and the files it lists, nothing else)')
    .action(async (options: Record<string, unknown>, self: Command) => {
      const { makeSyntheticAction } = await import('../actions/models.js');
      await makeSyntheticAction(options, self);
    });
  registerPullAndConvert(models);
  registerCompress(models);
  registerCache(models);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function addConvertOptions(command: Command): Command {
  return command
    .option('--format <format>', `${FORMATS.join(' | ')}: ONNX blocks, or CoreML packages (.mlpackage)`, 'onnx')
    .option('--dtype <dtype>', `${DTYPES.join(' | ')}: how weights are stored`, 'float32')
    .option('--python <path>', 'Python with torch and onnx for the converter (default: $ONDEVICE_SORA_PYTHON, $PYTHON, python3)')
    .option('--overwrite', 'replace an existing output folder');
}

function registerPullAndConvert(models: Command): void {
  addConvertOptions(
    models
      .command('pull')
      .description(
        'download the Open-Sora 1.2 checkpoints (only the files conversion needs) into the Hugging Face cache ' +
          '(HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE as the Python tools read them), then convert them',
      )
      .argument('<model>', MODEL_IDS.join(' | '))
      .option('-o, --output <dir>', 'model folder to write (default: ./<model>, ./<model>-coreml for CoreML)')
      .option('--download-only', 'only download; print the folders to pass to `models convert`')
      .option('--revision <rev>', 'a revision for every repository, or REPO=REV for one (repeatable)', collect, []),
  ).action(async (model: string, options: Record<string, unknown>, self: Command) => {
    const { pullAction } = await import('../actions/models-pull.js');
    await pullAction(model, options, self);
  });

  addConvertOptions(
    models
      .command('convert')
      .description(
        'convert downloaded checkpoint folders (recognised by their config.json) into a model folder; the tokenizer ' +
          'is built from the T5 folder\'s spiece.model; configs are chosen from each folder\'s config.json',
      )
      .argument('[dirs...]', 'the STDiT3, T5 and VAE checkpoint folders, in any order')
      .requiredOption('-o, --output <dir>', 'model folder to write')
      .option('--name <name>', 'model name in the manifest (default opensora-v1.2)')
      .option('--stdit <dir>', 'the STDiT3 checkpoint folder, if not among the dirs')
      .option('--t5 <dir>', 'the T5 encoder checkpoint folder, if not among the dirs')
      .option('--vae <dir>', 'the VAE checkpoint folder, if not among the dirs')
      .option('--tokenizer <dir>', 'folder with tokenizer.json or spiece.model (default: the T5 folder)')
      .option('--config-stdit <name>', 'STDiT config name instead of the one chosen from config.json')
      .option('--config-t5 <name>', 'T5 config name instead of the one chosen from config.json')
      .option('--config-vae <name>', 'VAE config name instead of the one chosen from config.json'),
  ).action(async (dirs: string[], options: Record<string, unknown>, self: Command) => {
    const { convertAction } = await import('../actions/models-pull.js');
    await convertAction(dirs, options, self);
  });
}

function registerCompress(models: Command): void {
  models
    .command('compress')
    .description(
      'write a copy of a model folder with its weights stored as float16, or as int8 with a scale per output channel ' +
        '(matrices and kernels; float16 for the rest), computed in float32: the same blocks, so generate runs it ' +
        'unchanged; fewer bytes to load. CoreML packages: int8 through coremltools. Needs Python with onnx, numpy and jsonschema',
    )
    .argument('<dir>', 'model folder with manifest.json and float32 weights')
    .requiredOption('--weights <setting>', 'fp16 (= float16) | int8')
    .requiredOption('-o, --output <dir>', 'folder to write (must not exist)')
    .option('--python <path>', 'Python with onnx and numpy (default: $ONDEVICE_SORA_PYTHON, $PYTHON, python3)')
    .action(async (dir: string, options: Record<string, unknown>, self: Command) => {
      const { compressAction } = await import('../actions/models-compress.js');
      await compressAction(dir, options, self);
    });
}

function registerCache(models: Command): void {
  const cache = models
    .command('cache')
    .description(`the CoreML compile cache (${displayPath(defaultCoreMLCacheDir())}) and ONNX Runtime's optimised graphs (--graph-cache)`);
  cache
    .command('prune')
    .description(
      'remove compiled models whose .mlpackage is gone or changed, those unused for --unused-days, and any no entry ' +
        'refers to; optimised graphs unused for --unused-days and those a crashed run left half-written (only what ' +
        'the caches themselves wrote)',
    )
    .option('--unused-days <n>', `remove what was not used for this many days (default ${DEFAULT_UNUSED_DAYS})`)
    .option('--all', 'remove every compiled model and optimised graph (made again when next loaded)')
    .action(async (options: Record<string, unknown>, self: Command) => {
      const { pruneAction } = await import('../actions/models-cache.js');
      await pruneAction(options, self);
    });
}
