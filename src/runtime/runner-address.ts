/**
 * Where a runner is (`--connect HOST:PORT | unix:PATH`, `--device <udid>|auto`) and how to open a byte stream to
 * it, then the RemoteBackend on that stream.
 */
import { connect as netConnect, isIPv6, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage, SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { ComputeUnits } from '../native/coreml.js';
import { RemoteBackend } from './remote-backend.js';
import { DEFAULT_RUNNER_PORT } from './runner-messages.js';
import { connectDevice, findDevice, usbmuxdPath } from './usbmux.js';

export type RunnerTarget =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  /** An iPhone over USB, through usbmuxd: its UDID or `auto` (the only one attached). */
  | { readonly kind: 'usb'; readonly device: string; readonly port: number };

const CONNECT_MESSAGE = 'must be HOST:PORT (e.g. 127.0.0.1:7315, [::1]:7315) or unix:PATH';

/** Parses `--connect` (and `serve --listen`, where port 0 asks for a free port): the target, or what is wrong. */
export function parseConnect(text: string, { portZero = false }: { portZero?: boolean } = {}): RunnerTarget | string {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    return path === '' ? CONNECT_MESSAGE : { kind: 'unix', path };
  }
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (match === null) return CONNECT_MESSAGE;
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (match[1] !== undefined && !isIPv6(host)) return CONNECT_MESSAGE;
  if (port > 65535 || (port === 0 && !portZero)) return `the port must be from ${portZero ? 0 : 1} to 65535`;
  return { kind: 'tcp', host, port };
}

export function describeTarget(target: RunnerTarget): string {
  switch (target.kind) {
    case 'tcp':
      return `runner at ${isIPv6(target.host) ? `[${target.host}]` : target.host}:${target.port}`;
    case 'unix':
      return `runner at unix:${target.path}`;
    case 'usb':
      return `runner on iPhone ${target.device} port ${target.port}`;
  }
}

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

export { DEFAULT_RUNNER_PORT };
