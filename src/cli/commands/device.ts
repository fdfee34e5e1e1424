/** `device setup`: the iPhone runner app (macOS with Xcode). The work is in ../actions/device.ts. */
import type { Command } from 'commander';
import { packagePath } from '../../package-root.js';

const TINY_COREML = packagePath('models', 'tiny-coreml');

/** The signing team when --team is not given. */
export const TEAM_ENV = 'ONDEVICE_SORA_TEAM';

export function register(program: Command): void {
  const device = program.command('device').description('the iPhone runner app (macOS with Xcode)');
  device
    .command('setup')
    .description('build the iPhone runner app, install it on a tethered iPhone, copy a CoreML model into it and start it')
    .option('--device <udid>', 'the iPhone, by UDID, or auto (the only one attached)', 'auto')
    .option('--model <dir>', 'CoreML model folder to copy onto the iPhone', TINY_COREML)
    .option('--team <id>', `Apple development team ID that signs the app (default: $${TEAM_ENV})`)
    .action(async (options: Record<string, unknown>, self: Command) => {
      const { setupAction } = await import('../actions/device.js');
      await setupAction(options, self);
    });
}
