/** `models cache prune`: frees the disk the CoreML compile cache holds (compiled copies of .mlpackage blocks). */
import type { Command } from 'commander';
import { z } from 'zod';
import { displayPath } from '../../display-path.js';
import { defaultCoreMLCacheDir, pruneCache } from '../../runtime/coreml-cache.js';
import { cliContext, type CliContext } from '../context.js';
import { integerFlag, parseFlags } from '../flags.js';
import { formatBytes } from '../format.js';

const DEFAULT_UNUSED_DAYS = 30;

const PruneFlags = z.object({
  all: z.boolean().optional(),
  unusedDays: integerFlag(0, 100_000, 'must be a whole number of days, 0 or more').optional(),
});

export function registerCache(models: Command): void {
  const cache = models.command('cache').description(`the CoreML compile cache (${displayPath(defaultCoreMLCacheDir())})`);
  cache
    .command('prune')
    .description(
      'remove compiled models whose .mlpackage is gone or changed, those unused for --unused-days, and any no entry ' +
        'refers to (only what the cache itself wrote)',
    )
    .option('--unused-days <n>', `remove what was not used for this many days (default ${DEFAULT_UNUSED_DAYS})`)
    .option('--all', 'remove every compiled model (they are compiled again when next loaded)')
    .action(async (options: Record<string, unknown>, command: Command) => prune(options, cliContext(command)));
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
