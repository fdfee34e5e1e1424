/** The data side of the job queue, without Redis: queue URLs, model fingerprints, job ids and job data checks. */
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJob, jobFor, type EnqueueRequest } from '../src/cli/queue-job.js';
import { modelFingerprint } from '../src/model/fingerprint.js';
import { loadModel } from '../src/model/manifest.js';
import { queueFlag } from '../src/queue/connection.js';
import { ROOT } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { tempDir } from './helpers/model-folder.js';

describe('--queue URL', () => {
  it('takes host, port, password and queue name; masks the password for display', () => {
    expect(queueFlag.parse('redis://:p%40ss@10.0.0.5:7000/vbench')).toEqual({
      host: '10.0.0.5',
      port: 7000,
      password: 'p@ss',
      tls: false,
      name: 'vbench',
      display: 'redis://:***@10.0.0.5:7000/vbench',
    });
    expect(queueFlag.parse('redis://localhost')).toMatchObject({ host: 'localhost', port: 6379, name: 'ondevice-sora', tls: false });
    expect(queueFlag.parse('rediss://user:pw@[::1]:6380/q')).toMatchObject({ host: '::1', username: 'user', tls: true, name: 'q' });
  });

  it('refuses other schemes, a query, a nested or colon-holding name', () => {
    const bad = ['http://localhost/q', 'redis://localhost/a/b', 'redis://localhost/a:b', 'redis://localhost/q?db=2', 'localhost:6379', ''];
    for (const url of bad) expect(queueFlag.safeParse(url).success, url).toBe(false);
    recordFaults({ badInputs: bad.length });
  });
});

describe('model fingerprint', () => {
  it('is the same for a copy of the folder elsewhere and differs between models', async () => {
    const dir = await tempDir('sora-fingerprint-');
    try {
      const copy = join(dir, 'tiny-copy');
      await cp(join(ROOT, 'models', 'tiny'), copy, { recursive: true });
      const tiny = modelFingerprint(await loadModel(join(ROOT, 'models', 'tiny')));
      expect(tiny).toMatch(/^[0-9a-f]{64}$/);
      expect(modelFingerprint(await loadModel(copy))).toBe(tiny);
      expect(modelFingerprint(await loadModel(join(ROOT, 'models', 'shapes')))).not.toBe(tiny);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('job data', () => {
  const request = async (overrides: Partial<EnqueueRequest> = {}): Promise<EnqueueRequest> => ({
    entry: { index: 0, line: 3, prompt: 'a red ball', steps: 2 },
    output: '0003-a-red-ball.mp4',
    seed: 17,
    options: { steps: '4', resolution: '128x128', timestepTransform: 'opensora', preset: 'baseline', format: 'mp4', backend: 'onnx', ffmpeg: '/usr/bin/ffmpeg' },
    model: await loadModel(join(ROOT, 'models', 'tiny')),
    fingerprint: 'a'.repeat(64),
    folder: 'b'.repeat(32),
    file: '/data/prompts.txt',
    ...overrides,
  });

  it('round-trips through the checks; worker-side flags (backend, ffmpeg) never travel', async () => {
    const { data } = jobFor(await request());
    expect(data.flags).toEqual({ steps: '4', resolution: '128x128', timestepTransform: 'opensora', preset: 'baseline', format: 'mp4' });
    const job = parseJob(JSON.parse(JSON.stringify(data)));
    if (typeof job === 'string') throw new Error(job);
    expect(job.entry).toMatchObject({ line: 3, prompt: 'a red ball', steps: 2, seed: 17, output: '0003-a-red-ball.mp4' });
    expect(job.flags).toMatchObject({ steps: 4, resolution: { width: 128, height: 128 }, format: 'mp4' });
  });

  it('ids: a seed drawn at random does not change the id; the line, a flag, the folder or the model do', async () => {
    const base = jobFor(await request()).id;
    expect(base).toMatch(/^line3-[0-9a-f]{32}$/);
    expect(jobFor(await request({ seed: 99 })).id).toBe(base);
    const others = [
      await request({ options: { ...(await request()).options, seed: '99' } }),
      await request({ entry: { index: 0, line: 4, prompt: 'a red ball', steps: 2 } }),
      await request({ options: { ...(await request()).options, steps: '5' } }),
      await request({ folder: 'c'.repeat(32) }),
      await request({ fingerprint: 'd'.repeat(64) }),
      await request({ file: '/data/other.txt' }),
    ];
    for (const other of others) expect(jobFor(other).id).not.toBe(base);
  });
});
