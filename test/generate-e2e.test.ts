import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findFfmpeg } from '../src/video/ffmpeg.js';
import { assertBuilt, cli, ROOT, TEST_MODEL_ENV } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';
import { decodeRgbFrames, probeVideo } from './helpers/video-probe.js';

// The real thing: the built CLI on the shipped tiny model, real ONNX Runtime, real ffmpeg.
interface TinyDefaults {
  readonly numFrames: number;
  readonly fps: number;
  readonly resolution: string;
}

let dir: string;
let defaults: TinyDefaults;
let width: number;
let height: number;

beforeAll(async () => {
  assertBuilt();
  dir = await tempDir('sora-e2e-');
  defaults = (JSON.parse(await readFile(join(ROOT, 'models', 'tiny', 'manifest.json'), 'utf8')) as { defaults: TinyDefaults })
    .defaults;
  [width = 0, height = 0] = defaults.resolution.split('x').map(Number);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const PROMPT = 'a red ball bouncing';

/** Reproducibility does not depend on size or step count, so these runs are kept small. */
const SMALL = ['--resolution', '128x128', '--steps', '8'];

async function generateFrames(name: string, seed: number, ...flags: string[]): Promise<Buffer[]> {
  const folder = join(dir, name);
  const args = ['generate', PROMPT, '-o', folder, '--format', 'frames', '--seed', String(seed), ...SMALL, ...flags];
  const result = await cli(args);
  expect(result.code, result.stderr).toBe(0);
  const names = (await readdir(folder)).sort();
  return Promise.all(names.map((file) => readFile(join(folder, file))));
}

describe('generate on the shipped tiny model', () => {
  it('writes a playable H.264 MP4 with the model’s frame count, fps and size, and its sidecar', async () => {
    const output = join(dir, 'ball.mp4');
    const result = await cli(['generate', PROMPT, '-o', output, '--seed', '42']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^wrote .*ball\\.mp4 \\(${defaults.numFrames} frames, ${width}x${height}, `));
    expect((await readdir(dir)).filter((name) => name.startsWith('ball') || name.startsWith('.ball')).sort()).toEqual([
      'ball.json',
      'ball.mp4',
    ]);
    const ffmpeg = await findFfmpeg(undefined);
    expect(await probeVideo(ffmpeg.path, output)).toEqual({
      codec: 'h264',
      width,
      height,
      frameRate: `${defaults.fps}/1`,
      frames: defaults.numFrames,
      pixelFormat: 'yuv420p',
    });
    const decoded = await decodeRgbFrames(ffmpeg.path, output, width, height);
    expect(decoded).toHaveLength(defaults.numFrames);

    const sidecar = JSON.parse(await readFile(join(dir, 'ball.json'), 'utf8'));
    expect(sidecar).toMatchObject({
      prompt: PROMPT,
      promptText: `${PROMPT} aesthetic score: 6.5.`,
      seed: 42,
      model: { name: 'tiny' },
      settings: { steps: 30, cfgScale: 7, timestepTransform: 'opensora', format: 'mp4', resolution: defaults.resolution },
      sampler: { evaluations: 30, leapStep: null },
      versions: { tool: expect.any(String), node: process.version, onnxruntime: expect.any(String), ffmpeg: ffmpeg.version },
    });
    for (const part of ['tokenizer', 'textEncoder', 'denoise', 'vae', 'write', 'total']) {
      expect(sidecar.timingsMs[part]).toBeGreaterThanOrEqual(0);
    }
  });

  it('gives bit-identical frames for the same seed, different ones for another seed or transform', async () => {
    const first = await generateFrames('seed7-a', 7);
    const again = await generateFrames('seed7-b', 7);
    const otherSeed = await generateFrames('seed8', 8);
    const ios = await generateFrames('seed7-ios', 7, '--timestep-transform', 'ios');
    expect(first).toHaveLength(defaults.numFrames);
    expect(again.map((png, i) => png.equals(first[i]!))).toEqual(first.map(() => true));
    expect(otherSeed.some((png, i) => !png.equals(first[i]!))).toBe(true);
    expect(ios.some((png, i) => !png.equals(first[i]!))).toBe(true);
  });

  it('prints the summary as JSON on stdout with --json', async () => {
    const output = join(dir, 'summary.mp4');
    const result = await cli(['generate', PROMPT, '-o', output, '--seed', '7', ...SMALL, '--no-aes', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({
      promptText: PROMPT,
      seed: 7,
      settings: { steps: 8, resolution: '128x128', aestheticScore: null },
      sidecar: join(dir, 'summary.json'),
    });
  });
});

describe('interrupting generate', () => {
  it('Ctrl-C mid-run exits 130 and leaves no partial output', async () => {
    const folder = join(dir, 'interrupted');
    await mkdir(folder);
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'ondevice-sora'), 'generate', PROMPT, '-o', join(folder, 'x.mp4')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...TEST_MODEL_ENV },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (chunk: string) => {
        stderr += chunk;
        if (stderr.includes('denoising 2/')) resolve();
      });
    });
    child.kill('SIGINT');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(130);
    expect(await readdir(folder)).toEqual([]);
  });
});
