import { copyFile, mkdtemp, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { findFfmpeg, type Ffmpeg } from '../src/video/ffmpeg.js';
import { mp4FrameCount } from '../src/video/mp4-frames.js';
import { checkFrameCount, writeVideo } from '../src/video/video-writer.js';
import { SoraError } from '../src/errors.js';
import { probeVideo } from './helpers/video-probe.js';

function frames(count: number, size: number): Uint8Array[] {
  return Array.from({ length: count }, (_, t) => new Uint8Array(size * size * 3).map((_, i) => (i * 7 + t * 31) % 256));
}

let dir: string;
let ffmpeg: Ffmpeg;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sora-mp4-frames-'));
  ffmpeg = await findFfmpeg(undefined);
});

async function realMp4(name: string, count: number, size = 32): Promise<string> {
  const path = join(dir, name);
  await writeVideo(frames(count, size), { format: 'mp4', width: size, height: size, fps: 24 }, { path, ffmpegPath: ffmpeg.path });
  return path;
}

describe('counting the frames of an MP4 in this process (real ffmpeg output)', () => {
  it.each([1, 17, 51])('%i frames: the count an independent reader decodes (ffprobe)', async (count) => {
    const path = await realMp4(`ok-${count}.mp4`, count);
    expect(await mp4FrameCount(path)).toEqual({ frames: count });
    expect((await probeVideo(ffmpeg.path, path)).frames).toBe(count);
  });

  it('a file cut inside its frames (the index, at the front, still whole) names the first frame past the end', async () => {
    const path = await realMp4('cut.mp4', 30, 64);
    const { size } = await stat(path);
    await truncate(path, size - 200);
    expect(await mp4FrameCount(path)).toEqual({ unreadable: expect.stringMatching(/^frame \d+ lies past the end of the file/) as string });
  });

  it('a file cut inside its index, and bytes that are no MP4, are unreadable, with nothing printed', async () => {
    const cut = join(dir, 'no-index.mp4');
    await copyFile(await realMp4('whole.mp4', 5), cut);
    await truncate(cut, 300);
    const garbage = join(dir, 'garbage.mp4');
    await writeFile(garbage, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) % 256)));
    // mp4box prints some parse errors with console.error itself ("[BoxParser] Invalid box type" for these bytes).
    const printed = vi.spyOn(console, 'error');
    try {
      for (const path of [cut, garbage]) expect(await mp4FrameCount(path)).toHaveProperty('unreadable');
      expect(printed).not.toHaveBeenCalled();
      expect(console.error).toBe(printed);
    } finally {
      printed.mockRestore();
    }
  });
});

describe('checkFrameCount on MP4s, before an output is committed', () => {
  it('passes a whole file, and fails one with fewer frames than were sent with an IO error naming both counts', async () => {
    const path = await realMp4('short.mp4', 12);
    await checkFrameCount(path, 'mp4', 12, ffmpeg.path);
    const failure = await checkFrameCount(path, 'mp4', 13, ffmpeg.path).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SoraError);
    expect((failure as SoraError).code).toBe('IO');
    expect((failure as SoraError).message).toBe(`ffmpeg (${ffmpeg.path}) exited 0 but wrote 12 of 13 frames`);
  });

  it('fails bytes that are no MP4 with one IO line that says so', async () => {
    const path = join(dir, 'text.mp4');
    await writeFile(path, 'not a video');
    await expect(checkFrameCount(path, 'mp4', 3, ffmpeg.path)).rejects.toThrow(/^ffmpeg \(.*\) exited 0 but what it wrote is no readable MP4: [^\n]+$/);
  });
});
