/** `models compress` (options in ../commands/models.ts): a copy of a model folder with float16 or int8 weight storage, for devices bound by loading. */
import type { Command } from 'commander';
import * as z from 'zod';
import { compressibleModel, compressModel, COMPRESS_MODULES, type WeightSetting } from '../../convert/compress-model.js';
import { COREMLTOOLS, findPython } from '../../convert/python.js';
import { displayPath } from '../../display-path.js';
import type { Model } from '../../model/manifest.js';
import { cliContext, type CliContext } from '../context.js';
import { parseFlags } from '../flags.js';
import { formatBytes } from '../format.js';

/** What --weights takes: the stored dtypes, and `fp16` for float16. */
const WEIGHT_NAMES: Readonly<Record<string, WeightSetting>> = { fp16: 'float16', float16: 'float16', int8: 'int8' };

const CompressFlags = z.object({
  weights: z.enum(Object.keys(WEIGHT_NAMES) as [string, ...string[]], `must be one of: ${Object.keys(WEIGHT_NAMES).join(', ')}`),
  output: z.string().min(1, 'must name a folder'),
  python: z.string().min(1, 'must name a Python interpreter').optional(),
});

/** What `models compress` runs (commands/models.ts defines its options). */
export async function compressAction(dir: string, options: Record<string, unknown>, self: Command): Promise<void> {
  await compress(dir, options, cliContext(self));
}

function folderBytes(model: Model): number {
  const files = new Map([...model.tokenizer.files, ...model.blocks.flatMap((b) => b.files)].map((f) => [f.path, f.bytes]));
  return [...files.values()].reduce((sum, n) => sum + n, 0);
}

async function compress(dir: string, options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(CompressFlags, options);
  const weights = WEIGHT_NAMES[flags.weights]!;
  const source = await compressibleModel(dir);
  const packages = source.blocks.some((block) => block.format === 'coreml');
  const purpose = 'models compress';
  const modules = packages ? [...COMPRESS_MODULES, COREMLTOOLS] : COMPRESS_MODULES;
  const python = await findPython({ purpose: packages ? `${purpose} (CoreML packages)` : purpose, modules, flag: flags.python });
  const model = await compressModel({
    source: source.dir,
    output: flags.output,
    weights,
    python,
    logger: context.logger,
    onEvent: (event) => {
      if (event.kind === 'unit') context.status(`[${event.index}/${event.total}] ${event.blocks}`);
    },
  });
  const before = folderBytes(source);
  const after = folderBytes(model);
  const text =
    `wrote ${displayPath(model.dir)}: ${model.blocks.length} blocks, weights ${weights}, ${formatBytes(after)} ` +
    `(${(before / after).toFixed(2)}x smaller than ${formatBytes(before)})`;
  context.result(text, { dir: model.dir, weights, blocks: model.blocks.length, bytes: after, sourceBytes: before });
}
