/** `generate <prompt> -o <file>`: one video from a text prompt. The work is in ../actions/generate.ts, loaded when it runs. */
import type { Command } from 'commander';
import { VIDEO_FORMATS } from '../../video/video-formats.js';
import { prestartOnnxWorkers } from '../onnx-prestart.js';
import { addJobOptions } from '../shared-options.js';

export function register(program: Command): void {
  const command = program
    .command('generate')
    .description('generate a video from a text prompt')
    .argument('<prompt>', 'what the video shows')
    .requiredOption('-o, --output <file>', 'video to write (.mp4, .webm, .gif), or a folder of PNG frames')
    .option('--format <format>', `${VIDEO_FORMATS.join(' | ')} (default: from the output's extension)`)
    .option('--preview <png>', 'also write a contact sheet: up to 16 frames, downscaled, in a grid (PNG)');
  addJobOptions(command).action(async (prompt: string, options: Record<string, unknown>, self: Command) => {
    prestartOnnxWorkers(options, self.optsWithGlobals());
    const { generateAction } = await import('../actions/generate.js');
    await generateAction(prompt, options, self);
  });
}
