/** `eval`: scores a shapes-world model's speed-up configurations, or one video. The work is in ../actions/eval.ts. */
import type { Command } from 'commander';
import { DEFAULT_EVAL_CONFIGS, EVAL_CONFIGS } from '../../eval/eval-config-names.js';
import { WORLD_FILE } from '../../eval/world-file.js';
import { MODEL_HELP } from '../shared-options.js';

/** The seed of each prompt's first generation when --seed is not given. */
export const DEFAULT_SEED = 42;

export function register(program: Command): void {
  program
    .command('eval')
    .description('score a shapes-world model on its held-out prompts under each speed-up configuration, or score one video')
    .option('--model <dir>', MODEL_HELP)
    .option('--world <file>', `the world the model was trained on (default: ${WORLD_FILE} in the model folder)`)
    .option('--configs <list>', `comma-separated, of ${EVAL_CONFIGS.join(',')} (default: ${DEFAULT_EVAL_CONFIGS.join(',')}); the baseline always runs`)
    .option('--prompts <n>', 'the first N held-out prompts, or all (default: all)')
    .option('--seed <n>', `seed of the first generation of each prompt (default: ${DEFAULT_SEED})`)
    .option('--seeds <k>', 'seeds per prompt: seed, seed + 1, … (default: 1)')
    .option('--cfg-scale <s>', "classifier-free guidance scale (default: the model's)")
    .option('--report <file>', 'also write every generation\'s scores and measurements there (JSON)')
    .option('--save-videos <dir>', 'keep every generated video there (mp4)')
    .option('--video <file>', 'score this video instead of generating: needs --prompt')
    .option('--prompt <text>', 'with --video: what the video should show, e.g. "a red circle moving left on a black background"')
    .option('--ffmpeg <path>', 'ffmpeg to decode --video or encode --save-videos with (default: FFMPEG_PATH, then PATH, then the bundled one)')
    .action(async (options: Record<string, unknown>, self: Command) => {
      const { evalAction } = await import('../actions/eval.js');
      await evalAction(options, self);
    });
}
