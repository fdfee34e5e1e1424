/** `models cache prune`: frees the disk the CoreML compile cache holds (compiled copies of .mlpackage blocks). */
import type { Command } from 'commander';
import { z } from 'zod';
import { displayPath } from '../../display-path.js';
import { defaultCoreMLCacheDir, pruneCache } from '../../runtime/coreml-cache.js';
import { cliContext, type CliContext } from '../context.js';
import { integerFlag, parseFlags } from '../flags.js';
import { formatBytes } from '../format.js';
import { DEFAULT_UNUSED_DAYS } from '../commands/models.js';


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
  const dir = defaultCoreMLCacheDir();
  const result = await pruneCache(dir, { all: flags.all === true, unusedDays: flags.unusedDays ?? DEFAULT_UNUSED_DAYS });
  const freed = result.removed.reduce((sum, model) => sum + model.bytes, 0);
  const text =
    `${displayPath(dir)}: removed ${result.removed.length} compiled model${result.removed.length === 1 ? '' : 's'} ` +
    `(${formatBytes(freed)}); kept ${result.kept.compiledModels} (${formatBytes(result.kept.bytes)})`;
  context.result(text, { dir, removed: result.removed, freedBytes: freed, kept: result.kept });
}
