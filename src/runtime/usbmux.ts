/**
 * A usbmuxd client: lists the iPhones tethered over USB and opens a byte stream to a TCP port on one of them, which
 * is how a Mac reaches the runner app (it listens only on the phone's loopback). Each message is a 16-byte
 * little-endian header (length, version 1, type 8 = plist, tag) and an XML plist; after a Connect answered with
 * Result 0 the socket is a raw stream to the device port (apple-and-hub-facts.md).
 *
 * Written here rather than taken from appium-ios-device, which was tried against a fake usbmuxd and works: it
 * requires Node ^20.19 (this tool supports 20.17), brings 139 packages (55 MB, a second copy of sharp, axios) for
 * the two requests used here, and reports a refused device as "Unexpected data". The plists go through `plist`.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { PlistValue } from 'plist';
import { errorMessage, SoraError } from '../errors.js';
import { VERSION } from '../version.js';

export const USBMUXD_SOCKET = '/var/run/usbmuxd';
/** libusbmuxd's variable for another usbmuxd (`UNIX:/path`); the tests serve a fake one through it. */
export const USBMUXD_ENV = 'USBMUXD_SOCKET_ADDRESS';

const HEADER_BYTES = 16;
const PLIST_MESSAGE = 8;
const MAX_MESSAGE_BYTES = 1 << 20;
const TIMEOUT_MS = 5000;

/** usbmuxd's Result numbers. */
const RESULTS: Readonly<Record<number, string>> = { 1: 'bad command', 2: 'no such device', 3: 'connection refused', 6: 'bad version' };
const CONNECTION_REFUSED = 3;

export interface UsbDevice {
  /** usbmuxd's number for the device while it stays attached. */
  readonly deviceId: number;
  /** The device's UDID (SerialNumber). */
  readonly udid: string;
  /** USB or Network (Wi-Fi sync). */
  readonly connectionType: string;
}

/** The usbmuxd socket: USBMUXD_SOCKET_ADDRESS=UNIX:/path when set, else /var/run/usbmuxd. */
export function usbmuxdPath(env: NodeJS.ProcessEnv = process.env): string {
  const address = env[USBMUXD_ENV];
  if (address === undefined || address === '') return USBMUXD_SOCKET;
  if (!/^unix:/i.test(address)) throw new SoraError('USAGE', `${USBMUXD_ENV}: only UNIX:/path addresses are supported, got "${address}"`);
  return address.slice('unix:'.length);
}

export async function listDevices(path: string = usbmuxdPath()): Promise<UsbDevice[]> {
  const mux = await Usbmux.open(path);
  try {
    const reply = await mux.request({ MessageType: 'ListDevices' });
    const list = Array.isArray(reply.DeviceList) ? reply.DeviceList : [];
    return list.flatMap((entry) => {
      const properties = (entry as { Properties?: Record<string, unknown> }).Properties ?? {};
      const { DeviceID, SerialNumber, ConnectionType } = properties;
      if (typeof DeviceID !== 'number' || typeof SerialNumber !== 'string') return [];
      return [{ deviceId: DeviceID, udid: SerialNumber, connectionType: typeof ConnectionType === 'string' ? ConnectionType : 'USB' }];
    });
  } finally {
    mux.close();
  }
}

/** The device named by UDID, or the only one attached (`auto`); a one-line error otherwise. */
export async function findDevice(wanted: string, path: string = usbmuxdPath()): Promise<UsbDevice> {
  const devices = await listDevices(path);
  const names = devices.map((device) => `${device.udid} (${device.connectionType})`).join(', ');
  if (wanted === 'auto') {
    if (devices.length === 1) return devices[0]!;
    if (devices.length === 0) throw new SoraError('BACKEND', 'no iPhone is attached: usbmuxd lists no device (is it plugged in and trusted?)');
    throw new SoraError('USAGE', `--device auto: ${devices.length} devices are attached (${names}); pass --device <udid>`);
  }
  const device = devices.find((candidate) => candidate.udid.toLowerCase() === wanted.toLowerCase());
  if (device === undefined) {
    throw new SoraError('BACKEND', `--device ${wanted}: not attached; usbmuxd lists ${devices.length === 0 ? 'no device' : names}`);
  }
  return device;
}

/** A raw byte stream to `port` on the device. */
export async function connectDevice(device: UsbDevice, port: number, path: string = usbmuxdPath()): Promise<Socket> {
  const mux = await Usbmux.open(path);
  let handedOver = false;
  try {
    // The port goes in network byte order (usbmuxd's htons), as a plist integer.
    const reply = await mux.request({ MessageType: 'Connect', DeviceID: device.deviceId, PortNumber: ((port & 0xff) << 8) | (port >> 8) });
    const result = typeof reply.Number === 'number' ? reply.Number : -1;
    if (result === 0) {
      handedOver = true;
      return mux.takeSocket();
    }
    if (result === CONNECTION_REFUSED) {
      throw new SoraError(
        'BACKEND',
        `iPhone ${device.udid} refused port ${port}: is the runner app open on it? (ondevice-sora device setup installs and starts it)`,
      );
    }
    throw new SoraError('BACKEND', `usbmuxd could not connect to iPhone ${device.udid} port ${port}: ${RESULTS[result] ?? `result ${result}`}`);
  } finally {
    if (!handedOver) mux.close();
  }
}

/** One connection to usbmuxd: plist requests, answered in order. */
class Usbmux {
  #buffer = Buffer.alloc(0);
  #tag = 1;
  #plist: typeof import('plist') | undefined;
  #waiting: { tag: number; resolve(reply: Record<string, PlistValue>): void; reject(error: Error): void } | undefined;
  #failure: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly path: string,
  ) {
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) => this.#fail(new SoraError('BACKEND', `usbmuxd (${path}): ${errorMessage(error)}`)));
    socket.on('close', () => this.#fail(new SoraError('BACKEND', `usbmuxd (${path}) closed the connection`)));
  }

  static open(path: string): Promise<Usbmux> {
    return new Promise((resolve, reject) => {
      const socket = netConnect(path);
      socket.once('connect', () => resolve(new Usbmux(socket, path)));
      socket.once('error', (error: NodeJS.ErrnoException) => {
        const missing = error.code === 'ENOENT' || error.code === 'ECONNREFUSED';
        reject(
          missing
            ? new SoraError('DEPENDENCY', `usbmuxd is not running here (${path}: ${error.code}); USB devices need a Mac (or usbmuxd on Linux)`)
            : new SoraError('BACKEND', `usbmuxd (${path}): ${errorMessage(error)}`),
        );
      });
    });
  }

  async request(message: Record<string, PlistValue>): Promise<Record<string, PlistValue>> {
    if (this.#failure !== undefined) throw this.#failure;
    // `plist` (with xmlbuilder and @xmldom) loads only when a device is asked for: every other command starts without it.
    const plist = (this.#plist ??= await import('plist'));
    const tag = this.#tag++;
    const body = Buffer.from(plist.build({ ...message, ProgName: 'ondevice-sora', ClientVersionString: `ondevice-sora-${VERSION}` }), 'utf8');
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(HEADER_BYTES + body.byteLength, 0);
    header.writeUInt32LE(1, 4);
    header.writeUInt32LE(PLIST_MESSAGE, 8);
    header.writeUInt32LE(tag, 12);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new SoraError('BACKEND', `usbmuxd (${this.path}) did not answer within ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
      const settle = <T>(action: (value: T) => void) => (value: T) => {
        clearTimeout(timer);
        action(value);
      };
      this.#waiting = { tag, resolve: settle(resolve), reject: settle(reject) };
      this.socket.write(Buffer.concat([header, body]));
    });
  }

  /** After a successful Connect: the socket is the device stream; usbmuxd has nothing more to say on it. */
  takeSocket(): Socket {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('error');
    this.socket.removeAllListeners('close');
    if (this.#buffer.byteLength > 0) this.socket.unshift(this.#buffer);
    return this.socket;
  }

  close(): void {
    this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.byteLength >= HEADER_BYTES) {
      const length = this.#buffer.readUInt32LE(0);
      if (length < HEADER_BYTES || length > MAX_MESSAGE_BYTES) return this.#fail(new SoraError('BACKEND', `usbmuxd (${this.path}) sent a ${length}-byte message`));
      if (this.#buffer.byteLength < length) return;
      const tag = this.#buffer.readUInt32LE(12);
      const body = this.#buffer.subarray(HEADER_BYTES, length).toString('utf8');
      this.#buffer = this.#buffer.subarray(length);
      // A Connect answered with Result 0 turns the rest of the stream into device bytes: hand them over untouched.
      const waiting = this.#waiting;
      const plist = this.#plist;
      if (waiting === undefined || plist === undefined || waiting.tag !== tag) continue;
      this.#waiting = undefined;
      try {
        waiting.resolve(plist.parse(body) as Record<string, PlistValue>);
      } catch (error) {
        waiting.reject(new SoraError('BACKEND', `usbmuxd (${this.path}) sent a plist that cannot be read: ${errorMessage(error)}`));
      }
      if (this.#waiting === undefined) return;
    }
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(error);
    this.socket.destroy();
  }
}
