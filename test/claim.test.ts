import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claimPath, lockPathFor } from '../src/video/claim.js';
import { recordFaults } from './helpers/fault-ledger.js';

/** A lock as a worker on another machine leaves it when it is cut off mid-job: its host is not this one. */
async function lockFromAnotherHost(path: string, job: string): Promise<string> {
  const part = `.${path.split('/').pop()}.4242-0badcafe.part`;
  const record = { tool: 'ondevice-sora', pid: 4242, host: 'render-node-7', started: '2026-12-04T10:00:00.000Z', command: 'worker', part, job };
  await writeFile(lockPathFor(path), `${JSON.stringify(record)}\n`);
  const partPath = join(path, '..', part);
  await writeFile(partPath, 'half a video');
  return partPath;
}

describe('claims of queue jobs (real lock files)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'claim-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a later attempt of the same queue job takes over the claim another host's worker left, and removes its temporary", async () => {
    const video = join(dir, 'line-1.mp4');
    const stalePart = await lockFromAnotherHost(video, '17');
    const claim = await claimPath(video, { command: 'worker', job: '17' });
    expect(existsSync(stalePart)).toBe(false);
    expect(JSON.parse(await readFile(lockPathFor(video), 'utf8'))).toMatchObject({ job: '17', pid: process.pid });
    claim.release();
    expect(existsSync(lockPathFor(video))).toBe(false);
    recordFaults({ faultsInjected: 1 });
  });

  it("another host's claim for another job, or one without a job, is left alone and named", async () => {
    const video = join(dir, 'line-2.mp4');
    const part = await lockFromAnotherHost(video, '18');
    await expect(claimPath(video, { command: 'worker', job: '19' })).rejects.toThrow(/claimed by another run: worker, pid 4242 on render-node-7/);
    await expect(claimPath(video, { command: 'batch' })).rejects.toThrow(/claimed by another run/);
    expect(existsSync(part)).toBe(true);
    expect(existsSync(lockPathFor(video))).toBe(true);
    recordFaults({ concurrentRuns: 2 });
  });
});
