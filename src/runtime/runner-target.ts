/**
 * What `--connect HOST:PORT | unix:PATH` and `--device` name: parsed and described without loading the remote
 * backend (runner-address.ts opens the stream), so that checking the flags of a local job stays cheap (start-up).
 */
import { isIPv6 } from 'node:net';

export { DEFAULT_RUNNER_PORT } from './runner-port.js';

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
