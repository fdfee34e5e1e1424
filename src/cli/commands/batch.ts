/** `batch`: many prompts in one run with the model kept loaded (not implemented yet). */
import type { Command } from 'commander';
import { notImplemented } from '../context.js';

export function register(program: Command): void {
  program
    .command('batch')
    .description('generate one video per prompt in a file, keeping the model loaded between prompts (not implemented yet)')
    .argument('<prompts>', 'text file with one prompt per line')
    .action(() => {
      throw notImplemented('batch');
    });
}
