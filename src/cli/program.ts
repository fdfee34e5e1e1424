/**
 * The commander program: global options and the commands, each registered by its own module. Those modules hold
 * what `--help` shows and nothing more; a command's work (zod, the runtimes, ffmpeg) is imported when it runs.
 */
import { Command, Option } from 'commander';
import { LOG_LEVELS } from '../log-levels.js';
import { VERSION } from '../version.js';
import { addExamples } from './help-examples.js';
import { register as registerBatch } from './commands/batch.js';
import { register as registerBench } from './commands/bench.js';
import { register as registerDevice } from './commands/device.js';
import { register as registerDevices } from './commands/devices.js';
import { register as registerDoctor } from './commands/doctor.js';
import { register as registerEval } from './commands/eval.js';
import { register as registerGenerate } from './commands/generate.js';
import { register as registerModels } from './commands/models.js';
import { register as registerServe } from './commands/serve.js';
import { register as registerWorker } from './commands/worker.js';

export function createProgram(): Command {
  const program = new Command('ondevice-sora')
    .description('Generate videos from text on your own hardware: Open-Sora 1.2 split into blocks (On-device Sora).')
    .version(VERSION)
    .addOption(new Option('--log-level <level>', 'diagnostics on stderr').choices(LOG_LEVELS).default('warn'))
    .option('--verbose', 'print the stack trace when a command fails')
    .option('--json', 'print the result as JSON on stdout')
    .option('-q, --quiet', 'print only results and errors')
    // Errors come back to main() as exceptions instead of commander calling process.exit; subcommands created
    // after this inherit it.
    .exitOverride();
  const commands = [registerGenerate, registerBatch, registerWorker, registerBench, registerEval, registerServe, registerDevices, registerDevice, registerModels, registerDoctor];
  for (const register of commands) register(program);
  addExamples(program);
  return program;
}
