/** `devices`: the iPhones attached over USB. The work is in ../actions/devices.ts. */
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('devices')
    .description('list the iPhones attached over USB (usbmuxd), for generate --device <udid>')
    .action(async (_options: Record<string, unknown>, self: Command) => {
      const { devicesAction } = await import('../actions/devices.js');
      await devicesAction(self);
    });
}
