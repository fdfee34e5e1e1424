import { existsSync, readFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../src/model/manifest.js';
import { generate } from '../src/pipeline/generate.js';
import { wrapBackend } from '../src/runtime/backend.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { findFfmpeg, type Ffmpeg } from '../src/video/ffmpeg.js';
import { FrameStream } from '../src/video/frame-stream.js';
import { writeVideo } from '../src/video/video-writer.js';
import { writeFakeFfmpeg } from './helpers/fake-ffmpeg.js';
import { TINY_MODEL } from './helpers/golden.js';
import { tempDir } from './helpers/model-folder.js';
import { processGone, waitFor } from './helpers/processes.js';
import { probeVideo } from './helpers/video-probe.js';

const frame = (value: number): Uint8Array => new Uint8Array(16 * 16 * 3).fill(value);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let root: string;
let ffmpeg: Ffmpeg;
beforeAll(async () => {
  root = await tempDir('sora-frame-stream-');
  ffmpeg = await findFfmpeg(undefined);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('FrameStream', () => {
  it('gives the frames pushed, in order, to a reader that waits for them, and ends when told', async () => {
    const stream = new FrameStream();
    const read = (async () => {
      const values: number[] = [];
      for await (const f of stream) values.push(f[0]!);
      return values;
    })();
    stream.push([frame(1), frame(2)]);
    await pause(5);
    stream.push([frame(3)]);
    stream.end();
    expect(await read).toEqual([1, 2, 3]);
    expect(() => stream.push([frame(4)])).toThrow(/after end/);
  });

  it('a failed stream stops its reader with the failure', async () => {
    const stream = new FrameStream();
    const reason = new Error('the decoder failed');
    stream.push([frame(1)]);
    stream.fail(reason);
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const f of stream) seen.push(f[0]!);
      })(),
    ).rejects.toBe(reason);
    expect(seen).toEqual([]);
  });
});

describe('writing frames as they are decoded', () => {
  it('ffmpeg starts before the first frame and the video holds every frame pushed later', async () => {
    const path = join(root, 'streamed.part');
    const stream = new FrameStream();
    const writing = writeVideo(stream, { format: 'mp4', width: 16, height: 16, fps: 8 }, { path, ffmpegPath: ffmpeg.path });
    for (let chunk = 0; chunk < 3; chunk++) {
      await pause(20);
      stream.push([frame(chunk * 40), frame(chunk * 40 + 20)]);
    }
    stream.end();
    await writing;
    expect(await probeVideo(ffmpeg.path, path)).toMatchObject({ codec: 'h264', frames: 6, width: 16, height: 16 });
  });

  it('PNG frames too, named in the order they came', async () => {
    const folder = await tempDir('sora-frame-stream-png-');
    try {
      const stream = new FrameStream();
      const writing = writeVideo(stream, { format: 'frames', width: 16, height: 16, fps: 8 }, { path: folder });
      stream.push([frame(10)]);
      await pause(10);
      stream.push([frame(20), frame(30)]);
      stream.end();
      await writing;
      expect((await readdir(folder)).sort()).toEqual(['frame_00000.png', 'frame_00001.png', 'frame_00002.png']);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe('a decode that fails while ffmpeg already writes', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(TINY_MODEL);
  });

  it("fails with the decoder's error, and stops the ffmpeg that was already writing", async () => {
    const failure = new Error('injected: the spatial VAE failed');
    // Never exits by itself: only being stopped ends it (and generate() waits for that before it fails).
    const hang = await writeFakeFfmpeg(root, 'hang');
    const pidFile = join(root, 'ffmpeg.pid');
    const inner = new OnnxBackend({ logger: pino({ level: 'silent' }) });
    let spatialRuns = 0;
    const backend = wrapBackend(inner, {
      run: async (handle, inputs, options) => {
        // The second spatial chunk, once ffmpeg runs: frames of the first were already handed to it.
        if (handle.name === 'vae_spatial_part1' && ++spatialRuns === 2) {
          await waitFor('ffmpeg to start', () => existsSync(pidFile));
          throw failure;
        }
        return inner.run(handle, inputs, options);
      },
    });
    let pushedBeforeFailure = 0;
    try {
      const result = generate({
        model,
        backend,
        settings: { prompt: 'a cat', aestheticScore: null, seed: 1, steps: 2, cfgScale: 7, numFrames: 17, width: 64, height: 64, fps: 8, timestepTransform: 'opensora' },
        video: { format: 'mp4', path: join(root, 'decode-fails.part'), ffmpegPath: hang },
        logger: pino({ level: 'silent' }),
        onProgress: (progress) => {
          if (progress.phase === 'decode') pushedBeforeFailure = progress.frames;
        },
      });
      await expect(result).rejects.toBe(failure);
    } finally {
      await inner.close();
    }
    expect(pushedBeforeFailure).toBeGreaterThan(0);
    // Stopped before generate() failed. What a real ffmpeg wrote is at the temporary name, the caller's to remove.
    expect(processGone(Number(readFileSync(pidFile, 'utf8')))).toBe(true);
  });
});
