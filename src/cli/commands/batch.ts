/**
 * `batch <file> -o <folder>`: one video per prompt, here or (`--queue`) through workers; `batch status`. The work is
 * in ../actions/batch.ts and ../actions/batch-queue.ts, loaded when it runs.
 */
import type { Command } from 'commander';
import { VIDEO_FORMATS } from '../../video/video-formats.js';
import { addJobOptions, QUEUE_HELP } from '../shared-options.js';

export function register(program: Command): void {
  const command = program
    .command('batch')
    .description('generate one video per prompt in a file, keeping the model loaded from one prompt to the next')
    .argument('<file>', 'prompts: .txt (one per line, # comments), .jsonl or .csv (prompt plus per-line overrides)')
    // Checked by the flags schema rather than commander, which would demand it of `batch status` too.
    .option('-o, --output <folder>', 'folder for the videos, their sidecars and results.jsonl (made if missing; required)')
    .option('--format <format>', `${VIDEO_FORMATS.join(' | ')}, for lines that name no output extension`, 'mp4')
    .option('--resume', 'skip prompts whose sidecar shows an earlier run finished them')
    .option('--shard <i/n>', 'take only every n-th prompt line, starting at the i-th (1-based), to split across machines');
  const batch = addJobOptions(command)
    .action(async (file: string, options: Record<string, unknown>, self: Command) => {
      const { batchAction } = await import('../actions/batch-queue.js');
      await batchAction(file, options, self);
    })
    .option('--queue <url>', `${QUEUE_HELP}; enqueue the prompts for \`worker\` processes, then follow them`)
    .option('--detach', 'with --queue: enqueue and exit (run the same command again to follow)')
    // The queue flags are checked with every other flag, before the prompt file is read.
    .hook('preAction', async (_self, action) => {
      if (action !== batch || action.opts().queue === undefined) return;
      const { queueFlags } = await import('../actions/batch-queue.js');
      queueFlags(action.opts());
    });
  batch
    .command('status')
    .description('job counts of a queue (every batch in it) and the workers connected to it')
    // Not required here: `batch` has a --queue of its own, which takes the value wherever it stands.
    .option('--queue <url>', QUEUE_HELP)
    .action(async (_options: Record<string, unknown>, self: Command) => {
      const { statusAction } = await import('../actions/batch-queue.js');
      await statusAction(self);
    });
}
