/**
 * `devices` and `--device <udid>|auto` through a fake usbmuxd (the one part that cannot run here: a USB-tethered
 * iPhone), served by the test on a Unix socket and named by USBMUXD_SOCKET_ADDRESS. The CLI is the built one, in
 * real processes; a device's "port" is a real `serve` on loopback, reached through the fake's Connect.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RUNNER_PORT } from '../src/runtime/runner-messages.js';
import { assertBuilt, cli, expectOneLineError } from './helpers/cli.js';
import { startFakeUsbmuxd, type FakeDevice, type FakeUsbmuxd } from './helpers/fake-usbmuxd.js';
import { tempDir } from './helpers/model-folder.js';
import { startServe, type ServeProcess } from './helpers/runner.js';

const UDID = '00008110-001A2B3C4D5E801E';
const OTHER = '00008030-000C1D2E3F4A002E';
const SMALL = ['--resolution', '128x128', '--num-frames', '17', '--seed', '5', '--steps', '4', '--format', 'frames', '--quiet'];

let dir: string;
let runner: ServeProcess;
let count = 0;
const fakes: FakeUsbmuxd[] = [];

beforeAll(async () => {
  assertBuilt();
  dir = await tempDir('sora-usb-');
  runner = await startServe();
});

afterAll(async () => {
  await Promise.all(fakes.map((fake) => fake.close()));
  await runner?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function usbmuxd(devices: readonly FakeDevice[]): Promise<{ fake: FakeUsbmuxd; env: NodeJS.ProcessEnv }> {
  const fake = await startFakeUsbmuxd(await tempDir('sora-mux-'), devices);
  fakes.push(fake);
  return { fake, env: { USBMUXD_SOCKET_ADDRESS: `UNIX:${fake.path}` } };
}

function runnerPort(): number {
  return Number(runner.address.split(':').at(-1));
}

async function frames(out: string): Promise<Buffer[]> {
  const files = (await readdir(out)).sort();
  return Promise.all(files.map((file) => readFile(join(out, file))));
}

describe('devices (fake usbmuxd)', () => {
  it('says so when usbmuxd lists no device', async () => {
    const { fake, env } = await usbmuxd([]);
    const result = await cli(['devices'], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('no device attached');
    expect(fake.requests).toEqual(['ListDevices']);
  });

  it('lists every attached device by UDID (text and --json)', async () => {
    const { env } = await usbmuxd([
      { deviceId: 3, udid: UDID, port: 'refuse' },
      { deviceId: 7, udid: OTHER, port: 'refuse' },
    ]);
    const text = await cli(['devices'], env);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(UDID);
    expect(text.stdout).toContain(OTHER);
    const json = await cli(['devices', '--json'], env);
    const parsed = JSON.parse(json.stdout) as { devices: { udid: string; deviceId: number; connectionType: string }[] };
    expect(parsed.devices).toEqual([
      { deviceId: 3, udid: UDID, connectionType: 'USB' },
      { deviceId: 7, udid: OTHER, connectionType: 'USB' },
    ]);
  });

  it('one line and the dependency exit code when no usbmuxd listens', async () => {
    const result = await cli(['devices'], { USBMUXD_SOCKET_ADDRESS: `UNIX:${join(dir, 'no-usbmuxd.sock')}` });
    expectOneLineError(result, 8, 'usbmuxd is not running here');
  });
});

describe('generate --device (fake usbmuxd)', () => {
  it('--device auto with no device attached: one line, backend exit code, nothing written', async () => {
    const { env } = await usbmuxd([]);
    const out = join(dir, `none-${count++}`);
    const result = await cli(['generate', 'a red ball', '-o', out, ...SMALL, '--device', 'auto'], env);
    expectOneLineError(result, 6, 'no iPhone is attached');
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.json`)).toBe(false);
  });

  it('--device auto with two attached: asks for a UDID', async () => {
    const { env } = await usbmuxd([
      { deviceId: 3, udid: UDID, port: 'refuse' },
      { deviceId: 7, udid: OTHER, port: 'refuse' },
    ]);
    const result = await cli(['generate', 'a red ball', '-o', join(dir, `two-${count++}`), ...SMALL, '--device', 'auto'], env);
    expectOneLineError(result, 2, '2 devices are attached', '--device <udid>');
  });

  it('a UDID that is not attached: names the ones that are', async () => {
    const { env } = await usbmuxd([{ deviceId: 3, udid: UDID, port: 'refuse' }]);
    const result = await cli(['generate', 'a red ball', '-o', join(dir, `gone-${count++}`), ...SMALL, '--device', OTHER], env);
    expectOneLineError(result, 6, `--device ${OTHER}: not attached`, UDID);
  });

  it('the device refuses the runner port (app not open): one line, nothing written, port sent in network order', async () => {
    const { fake, env } = await usbmuxd([{ deviceId: 3, udid: UDID, port: 'refuse' }]);
    const out = join(dir, `refused-${count++}`);
    const result = await cli(['generate', 'a red ball', '-o', out, ...SMALL, '--device', UDID], env);
    expectOneLineError(result, 6, `iPhone ${UDID} refused port ${DEFAULT_RUNNER_PORT}`, 'runner app');
    expect(fake.requests).toEqual(['ListDevices', `Connect 3 ${DEFAULT_RUNNER_PORT}`]);
    expect(existsSync(out)).toBe(false);
  });

  it('works through usbmuxd: frames bit-identical to the local backend, the sidecar names the iPhone', async () => {
    const { fake, env } = await usbmuxd([{ deviceId: 5, udid: UDID, port: runnerPort() }]);
    const local = join(dir, `local-${count++}`);
    const usb = join(dir, `usb-${count++}`);
    const localRun = await cli(['generate', 'a red ball', '-o', local, ...SMALL]);
    expect(localRun.code, localRun.stderr).toBe(0);
    const usbRun = await cli(['generate', 'a red ball', '-o', usb, ...SMALL, '--device', 'auto'], env);
    expect(usbRun.code, usbRun.stderr).toBe(0);
    expect(fake.requests).toEqual(['ListDevices', `Connect 5 ${DEFAULT_RUNNER_PORT}`]);
    const sidecar = JSON.parse(await readFile(`${usb}.json`, 'utf8')) as { backend: { kind: string; device: string } };
    expect(sidecar.backend.kind).toBe('remote');
    expect(sidecar.backend.device).toContain(`iPhone ${UDID}`);
    const usbFrames = await frames(usb);
    expect(usbFrames.length).toBe(17);
    expect(usbFrames).toEqual(await frames(local));
  });
});
