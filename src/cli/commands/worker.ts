/** `worker --queue <url> -o <folder>`: takes the jobs of `batch --queue`. The work is in ../actions/worker.ts. */
import type { Command } from 'commander';
import { DEFAULT_STALL_SECONDS } from '../../queue/stall-timeout.js';
import { addLocalBackendOptions, addMemoryOptions, FFMPEG_HELP, MODEL_HELP, QUEUE_HELP } from '../shared-options.js';

export function register(program: Command): void {
  const command = program
    .command('worker')
    .description('take the jobs of `batch --queue` and write their videos into the shared output folder, keeping the model loaded')
    .requiredOption('--queue <url>', QUEUE_HELP)
    .requiredOption('-o, --output <folder>', "this machine's path to the batch's output folder (shared: NFS, SMB, a synced folder)")
    .option('--model <dir>', MODEL_HELP)
    .option('--concurrency <n>', 'jobs at a time, each with a model of its own in memory', '1')
    .option(
      '--stall-timeout <seconds>',
      "a job whose worker stops renewing its lock this long (killed, crashed, cut off) goes to another worker",
      String(DEFAULT_STALL_SECONDS),
    );
  addMemoryOptions(addLocalBackendOptions(command).option('--ffmpeg <path>', FFMPEG_HELP), { trace: false }).action(
    async (options: Record<string, unknown>, self: Command) => {
      const { workerAction } = await import('../actions/worker.js');
      await workerAction(options, self);
    },
  );
}
