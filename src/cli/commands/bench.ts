/** `bench`: load and run time of every block, and the speed-ups. The work is in ../actions/bench.ts. */
import type { Command } from 'commander';
import { MATRIX_CONFIGS } from '../../bench/matrix-configs.js';
import { SCALING_FRAMES, SCALING_SIZES, SCALING_STEPS } from '../../bench/scaling-defaults.js';
import { addBackendOptions, MODEL_HELP } from '../shared-options.js';

export function register(program: Command): void {
  const command = program
    .command('bench')
    .description('measure load and run time of every block, cold and warm, and the speed-ups of LPL, TDTM and CI-DL')
    .option('--model <dir>', MODEL_HELP)
    .option('--steps <n>', `denoising steps (default: the model's; with --scaling ${SCALING_STEPS})`)
    .option('--resolution <WxH>', "width x height, multiples of 16 (default: the model's)")
    .option('--num-frames <n>', "frames, a multiple of 17 (default: the model's)")
    .option('--seed <n>', 'random seed of every generation', '42')
    .option('--repeat <n>', 'fresh sessions per configuration, each one cold and one warm generation', '3')
    .option(
      '--matrix [configs]',
      `also run these configurations (default: all of ${MATRIX_CONFIGS.join(',')}); the baseline always runs`,
    )
    .option('--scaling', 'instead: STDiT step time, FLOPs, peak memory and efficiency over sizes and frame counts')
    .option('--scaling-sizes <list>', `--scaling: square sides in pixels (default: ${SCALING_SIZES.join(',')})`)
    .option('--scaling-frames <list>', `--scaling: frame counts (default: ${SCALING_FRAMES.join(',')})`)
    .option('--memory-budget <size>', 'CI-DL budget of the cidl and all configurations (default: as generate)')
    .option('-o, --output <folder>', 'write bench.json, bench.schema.json, CSV files and the chart (SVG, PNG) there')
    .option('--trace', 'with -o: also trace.json, every block load and run (Chrome trace, one process per configuration)')
    .option('--ffmpeg <path>', 'ffmpeg to encode with (default: FFMPEG_PATH, then PATH, then the bundled one)');
  addBackendOptions(command).action(async (options: Record<string, unknown>, self: Command) => {
    const { benchAction } = await import('../actions/bench.js');
    await benchAction(options, self);
  });
}
