import { mkdtemp, mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { findFfmpeg, type Ffmpeg } from '../src/video/ffmpeg.js';
import { pngFrameName, writeVideo, type VideoSpec } from '../src/video/video-writer.js';
import { decodeRgbFrames, probeVideo } from './helpers/video-probe.js';

const bundledPath = (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;

/** Synthetic frames: a moving colour gradient, so encoders see real motion and colour. */
function syntheticFrames(count: number, width: number, height: number): Uint8Array[] {
  return Array.from({ length: count }, (_, t) => {
    const frame = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = (y * width + x) * 3;
        frame[p] = (x * 4 + t * 8) % 256;
        frame[p + 1] = (y * 5) % 256;
        frame[p + 2] = 128;
      }
    }
    return frame;
  });
}

function meanAbsoluteDifference(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

let dir: string;
let ffmpeg: Ffmpeg;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sora-video-'));
  ffmpeg = await findFfmpeg(undefined);
});

describe('finding ffmpeg', () => {
  it('takes --ffmpeg first, and fails with a DEPENDENCY error when it does not run', async () => {
    await expect(findFfmpeg('/nonexistent/ffmpeg', { PATH: process.env.PATH })).rejects.toMatchObject({
      code: 'DEPENDENCY',
      message: expect.stringContaining('/nonexistent/ffmpeg'),
    });
    const found = await findFfmpeg(bundledPath, { PATH: '' });
    expect(found).toMatchObject({ path: bundledPath, source: '--ffmpeg' });
    expect(found.version).toMatch(/\S/);
  });

  it('then FFMPEG_PATH, then PATH, then the bundled @ffmpeg-installer binary', async () => {
    expect(await findFfmpeg(undefined, { FFMPEG_PATH: bundledPath, PATH: process.env.PATH })).toMatchObject({
      source: 'FFMPEG_PATH',
    });
    const binDir = join(dir, 'bin');
    await mkdir(binDir, { recursive: true });
    await symlink(bundledPath, join(binDir, 'ffmpeg')).catch(() => undefined);
    expect(await findFfmpeg(undefined, { PATH: `/nonexistent:${binDir}` })).toMatchObject({
      path: join(binDir, 'ffmpeg'),
      source: 'PATH',
    });
    expect(await findFfmpeg(undefined, { PATH: '/nonexistent' })).toMatchObject({
      path: bundledPath,
      source: '@ffmpeg-installer/ffmpeg',
    });
  });

  it('rejects something that is not ffmpeg', async () => {
    const fake = join(dir, 'not-ffmpeg');
    await writeFile(fake, '#!/bin/sh\necho hello\n', { mode: 0o755 });
    await expect(findFfmpeg(fake)).rejects.toMatchObject({ code: 'DEPENDENCY' });
  });
});

describe('writing video with real ffmpeg', () => {
  const spec: VideoSpec = { format: 'mp4', width: 64, height: 48, fps: 24 };
  const frames = syntheticFrames(17, spec.width, spec.height);

  it.each([
    ['the found ffmpeg', () => ffmpeg.path],
    ['the bundled 2018 ffmpeg', () => bundledPath],
  ])('writes an H.264 yuv420p MP4 with the frame count, fps and size asked for (%s)', async (_, encoder) => {
    // A temporary-style name without .mp4: the container must not depend on the extension.
    const path = join(dir, `.out-${Math.random().toString(16).slice(2)}.part`);
    await writeVideo(frames, spec, { path, ffmpegPath: encoder() });
    expect(await probeVideo(ffmpeg.path, path)).toEqual({
      codec: 'h264',
      width: 64,
      height: 48,
      frameRate: '24/1',
      frames: 17,
      pixelFormat: 'yuv420p',
    });
    const decoded = await decodeRgbFrames(ffmpeg.path, path, 64, 48);
    decoded.forEach((frame, i) => expect(meanAbsoluteDifference(frame, frames[i]!)).toBeLessThan(8));
  });

  it('honours another frame rate', async () => {
    const path = join(dir, 'fps8.mp4');
    await writeVideo(frames.slice(0, 4), { ...spec, fps: 8 }, { path, ffmpegPath: ffmpeg.path });
    expect(await probeVideo(ffmpeg.path, path)).toMatchObject({ frameRate: '8/1', frames: 4 });
  });

  it('writes VP9 WebM and GIF', async () => {
    const webm = join(dir, 'out.webm');
    await writeVideo(frames, { ...spec, format: 'webm' }, { path: webm, ffmpegPath: ffmpeg.path });
    expect(await probeVideo(ffmpeg.path, webm)).toMatchObject({ codec: 'vp9', frames: 17, width: 64, height: 48 });
    const gif = join(dir, 'out.gif');
    await writeVideo(frames, { ...spec, format: 'gif' }, { path: gif, ffmpegPath: ffmpeg.path });
    expect(await probeVideo(ffmpeg.path, gif)).toMatchObject({ codec: 'gif', frames: 17, width: 64, height: 48 });
  });

  it('writes lossless PNG frames with sharp for --format frames', async () => {
    const folder = join(dir, 'frames');
    await mkdir(folder);
    await writeVideo(frames, { ...spec, format: 'frames' }, { path: folder });
    const names = (await readdir(folder)).sort();
    expect(names).toEqual(frames.map((_, i) => pngFrameName(i)));
    const { data, info } = await sharp(join(folder, names[16]!)).raw().toBuffer({ resolveWithObject: true });
    expect(info).toMatchObject({ width: 64, height: 48, channels: 3 });
    expect(Buffer.compare(data, Buffer.from(frames[16]!))).toBe(0);
  });

  it('turns an ffmpeg failure into one IO error line', async () => {
    const path = join(dir, 'missing-folder', 'out.mp4');
    const error = await writeVideo(frames, spec, { path, ffmpegPath: ffmpeg.path }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IO' });
    expect((error as Error).message).not.toContain('\n');
    await expect(stat(path)).rejects.toThrow();
  });
});

describe('stopping the writer', () => {
  it('kills ffmpeg and fails with the abort reason when the signal fires', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    const frames = syntheticFrames(200, 320, 240);
    const path = join(dir, 'aborted.mp4');
    const writing = writeVideo(frames, { format: 'mp4', width: 320, height: 240, fps: 24 }, { path, ffmpegPath: ffmpeg.path, signal: controller.signal });
    setTimeout(() => controller.abort(reason), 50);
    await expect(writing).rejects.toBe(reason);
  });
});
