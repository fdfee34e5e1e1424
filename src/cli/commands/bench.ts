/** `bench`: per-block load and run times on this machine (not implemented yet). */
import type { Command } from 'commander';
import { notImplemented } from '../context.js';

export function register(program: Command): void {
  program
    .command('bench')
    .description('measure load and run time of every block of a model on this machine (not implemented yet)')
    .argument('<dir>', 'model folder (holds manifest.json)')
    .action(() => {
      throw notImplemented('bench');
    });
}
