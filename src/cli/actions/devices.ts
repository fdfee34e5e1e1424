/** `devices`: the iPhones tethered over USB (through usbmuxd), for `--device <udid>`. */
import type { Command } from 'commander';
import { displayPath } from '../../display-path.js';
import { listDevices, usbmuxdPath } from '../../runtime/usbmux.js';
import { cliContext, type CliContext } from '../context.js';

/** What `devices` runs (commands/ defines its options). */
export async function devicesAction(self: Command): Promise<void> {
  await devices(cliContext(self));
}

async function devices(context: CliContext): Promise<void> {
  const path = usbmuxdPath();
  const found = await listDevices(path);
  const lines =
    found.length === 0
      ? [`no device attached (usbmuxd at ${displayPath(path)} lists none)`]
      : ['udid                                      connection', ...found.map((device) => `${device.udid.padEnd(41)} ${device.connectionType}`)];
  context.result(lines.join('\n'), { usbmuxd: path, devices: found });
}
