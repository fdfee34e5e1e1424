/**
 * How to open a byte stream to a runner (`--connect HOST:PORT | unix:PATH`, `--device <udid>|auto`: parsed in
 * runner-target.ts), then the RemoteBackend on that stream.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage, SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { ComputeUnits } from '../native/coreml.js';
import { RemoteBackend } from './remote-backend.js';
import { describeTarget, type RunnerTarget } from './runner-target.js';
import { connectDevice, findDevice, usbmuxdPath } from './usbmux.js';

export interface RemoteChoice {
  readonly target: RunnerTarget;
  readonly token?: string;
  /** Compute units for every block the runner loads (`--compute-units`), over the manifest's. */
  readonly computeUnits?: ComputeUnits;
  /** See RemoteBackendOptions.dropIdle. */
  readonly dropIdle?: boolean;
  readonly logger?: Logger;
}

/** Opens the stream and says hello: the backend, or a one-line error naming the runner. */
export async function connectRemoteBackend(choice: RemoteChoice): Promise<RemoteBackend> {
  const { stream, where } = await openStream(choice.target);
  return RemoteBackend.connect(stream, {
    where,
    ...(choice.token !== undefined && { token: choice.token }),
    ...(choice.dropIdle !== undefined && { dropIdle: choice.dropIdle }),
    ...(choice.computeUnits !== undefined && { computeUnits: choice.computeUnits }),
    ...(choice.logger !== undefined && { logger: choice.logger }),
  });
}

/** The stream, and the runner it reaches (`auto` resolved to the device's UDID). */
async function openStream(target: RunnerTarget): Promise<{ readonly stream: Duplex; readonly where: string }> {
  if (target.kind === 'usb') {
    const path = usbmuxdPath();
    const device = await findDevice(target.device, path);
    const stream = await connectDevice(device, target.port, path);
    return { stream, where: describeTarget({ ...target, device: device.udid }) };
  }
  return { stream: await openSocket(target), where: describeTarget(target) };
}

function openSocket(target: Exclude<RunnerTarget, { kind: 'usb' }>): Promise<Socket> {
  const socket = target.kind === 'tcp' ? netConnect({ host: target.host, port: target.port }) : netConnect(target.path);
  return new Promise<Socket>((resolve, reject) => {
    socket.once('connect', () => {
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const hint = error.code === 'ECONNREFUSED' || error.code === 'ENOENT' ? ' (is `ondevice-sora serve` running there?)' : '';
      reject(new SoraError('BACKEND', `cannot reach the ${describeTarget(target)}: ${error.code ?? errorMessage(error)}${hint}`, { cause: error }));
    });
  });
}

export { DEFAULT_RUNNER_PORT, describeTarget, parseConnect, type RunnerTarget } from './runner-target.js';
