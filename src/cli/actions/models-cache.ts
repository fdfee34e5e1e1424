/**
 * `models cache prune`: frees the disk the tool's caches hold: the CoreML compile cache (compiled copies of .mlpackage
 * blocks) and ONNX Runtime's optimised graphs (`--graph-cache`).
 */
import type { Command } from 'commander';
import * as z from 'zod';
import { DEFAULT_UNUSED_DAYS } from '../../cache-age.js';
import { displayPath } from '../../display-path.js';
import { defaultCoreMLCacheDir, pruneCache } from '../../runtime/coreml-cache.js';
import { defaultGraphCacheDir, pruneGraphCache } from '../../runtime/onnx-graph-cache.js';
import { cliContext, type CliContext } from '../context.js';
import { integerFlag, parseFlags } from '../flags.js';
import { formatBytes } from '../format.js';


const PruneFlags = z.object({
  all: z.boolean().optional(),
  unusedDays: integerFlag(0, 100_000, 'must be a whole number of days, 0 or more').optional(),
});

/** What `models cache prune` runs (commands/ defines its options). */
export async function pruneAction(options: Record<string, unknown>, self: Command): Promise<void> {
  await prune(options, cliContext(self));
}

async function prune(options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(PruneFlags, options);
  const settings = { all: flags.all === true, unusedDays: flags.unusedDays ?? DEFAULT_UNUSED_DAYS };
  const dir = defaultCoreMLCacheDir();
  const result = await pruneCache(dir, settings);
  const freed = result.removed.reduce((sum, model) => sum + model.bytes, 0);
  const graphsDir = defaultGraphCacheDir();
  const graphs = await pruneGraphCache(graphsDir, settings);
  const graphsFreed = graphs.removed.reduce((sum, entry) => sum + entry.bytes, 0);
  const plural = (count: number, noun: string): string => `${count} ${noun}${count === 1 ? '' : 's'}`;
  const text =
    `${displayPath(dir)}: removed ${plural(result.removed.length, 'compiled model')} ` +
    `(${formatBytes(freed)}); kept ${result.kept.compiledModels} (${formatBytes(result.kept.bytes)})\n` +
    `${displayPath(graphsDir)}: removed ${plural(graphs.removed.length, 'optimised graph')} ` +
    `(${formatBytes(graphsFreed)}); kept ${graphs.kept.entries} (${formatBytes(graphs.kept.bytes)})`;
  context.result(text, {
    dir,
    removed: result.removed,
    freedBytes: freed,
    kept: result.kept,
    onnxGraphs: { dir: graphsDir, removed: graphs.removed.map((entry) => entry.name), freedBytes: graphsFreed, kept: graphs.kept },
  });
}
