/**
 * A fake usbmuxd on a Unix socket, following Apple's wire format (16-byte little-endian header: length, version 1,
 * type 8 = plist, tag; an XML plist): it lists the devices it is given and answers Connect by refusing the port
 * (Result 3), or by Result 0 followed by the raw bytes of a real TCP connection (what usbmuxd does with a device
 * port). Mocks the one part that cannot run here: a USB-tethered iPhone.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { build, parse, type PlistValue } from 'plist';

export interface FakeDevice {
  readonly deviceId: number;
  readonly udid: string;
  /** Connect to a device port: refused, or proxied to this TCP port on 127.0.0.1. */
  readonly port: 'refuse' | number;
}

export interface FakeUsbmuxd {
  readonly path: string;
  /** Every request's MessageType (and for Connect the device and the port, as a host-order number). */
  readonly requests: string[];
  close(): Promise<void>;
}

function message(tag: number, body: Record<string, PlistValue>): Buffer {
  const plist = Buffer.from(build(body));
  const header = Buffer.alloc(16);
  header.writeUInt32LE(16 + plist.byteLength, 0);
  header.writeUInt32LE(1, 4);
  header.writeUInt32LE(8, 8);
  header.writeUInt32LE(tag, 12);
  return Buffer.concat([header, plist]);
}

export async function startFakeUsbmuxd(dir: string, devices: readonly FakeDevice[]): Promise<FakeUsbmuxd> {
  const path = join(dir, 'usbmuxd.sock');
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.byteLength >= 16 && buffer.byteLength >= buffer.readUInt32LE(0)) {
        const length = buffer.readUInt32LE(0);
        const tag = buffer.readUInt32LE(12);
        const request = parse(buffer.subarray(16, length).toString('utf8')) as Record<string, PlistValue>;
        buffer = buffer.subarray(length);
        if (request.MessageType === 'ListDevices') {
          requests.push('ListDevices');
          const list = devices.map((d) => ({
            DeviceID: d.deviceId,
            MessageType: 'Attached',
            Properties: { ConnectionType: 'USB', DeviceID: d.deviceId, SerialNumber: d.udid, ProductID: 4776 },
          }));
          socket.write(message(tag, { DeviceList: list }));
        } else if (request.MessageType === 'Connect') {
          const wire = request.PortNumber as number;
          const port = ((wire & 0xff) << 8) | (wire >> 8);
          requests.push(`Connect ${String(request.DeviceID)} ${port}`);
          const device = devices.find((d) => d.deviceId === request.DeviceID);
          if (device === undefined) {
            socket.write(message(tag, { MessageType: 'Result', Number: 2 }));
          } else if (device.port === 'refuse') {
            socket.write(message(tag, { MessageType: 'Result', Number: 3 }));
          } else {
            const upstream = connect({ host: '127.0.0.1', port: device.port });
            upstream.once('connect', () => {
              socket.off('data', onData);
              socket.write(message(tag, { MessageType: 'Result', Number: 0 }));
              if (buffer.byteLength > 0) upstream.write(buffer);
              socket.pipe(upstream).pipe(socket);
            });
            upstream.on('error', () => socket.destroy());
            socket.on('close', () => upstream.destroy());
            return;
          }
        } else {
          requests.push(String(request.MessageType));
          socket.write(message(tag, { MessageType: 'Result', Number: 1 }));
        }
      }
    };
    socket.on('data', onData);
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    requests,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
