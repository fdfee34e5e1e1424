/** `doctor`: whether generate can run here, and what to install. The work is in ../actions/doctor.ts. */
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('doctor')
    .description(
      'check Node.js, ONNX Runtime and its execution providers, the native addon and CoreML bridge, ffmpeg, ' +
        'the shipped model, memory and CPU features; exits non-zero, saying what to install, when generate cannot run here',
    )
    .option('--model <dir>', 'also check a model folder of CoreML packages: which macOS it needs, and whether this Mac has it')
    .action(async (options: Record<string, unknown>, self: Command) => {
      const { doctorAction } = await import('../actions/doctor.js');
      await doctorAction(options, self);
    });
}
