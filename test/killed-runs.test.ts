/**
 * Runs that end badly, from outside: signals sent to the real CLI (SIGTERM, SIGINT, SIGKILL), fake ffmpegs that hang
 * or lie about what they wrote, and what the next run in the same folder finds and cleans.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { findFfmpeg } from '../src/video/ffmpeg.js';
import { cli, expectOneLineError, startCli } from './helpers/cli.js';
import { writeFakeFfmpeg } from './helpers/fake-ffmpeg.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { processGone, waitFor } from './helpers/processes.js';
import { CLAIM_OR_TEMPORARY, readResults, useCaseFolders } from './helpers/case-folders.js';

const FAST = ['--steps', '1', '--resolution', '128x128', '--seed', '1'];
const { IO, INTERRUPTED, TERMINATED } = ERROR_EXIT_CODES;

const fakePid = (dir: string): number => Number(readFileSync(join(dir, 'ffmpeg.pid'), 'utf8'));

const { caseDir } = useCaseFolders('sora-killed-');

describe('signals', () => {
  it.each([
    ['SIGTERM', TERMINATED],
    ['SIGINT', INTERRUPTED],
  ] as const)('generate: %s while ffmpeg runs exits %i; ffmpeg is stopped; no partial file or claim is left', async (signal, status) => {
    const dir = await caseDir();
    const gated = await writeFakeFfmpeg(dir, 'gated');
    const run = startCli(['generate', 'a red ball', '-o', join(dir, 'x.mp4'), ...FAST, '--ffmpeg', gated]);
    await waitFor('ffmpeg to start', () => existsSync(join(dir, 'ffmpeg.pid')));
    run.child.kill(signal);
    const result = await run.done;
    expect(result.code, result.stderr).toBe(status);
    await waitFor('ffmpeg to be stopped', () => processGone(fakePid(dir)), 10_000);
    const left = (await readdir(dir)).filter((name) => CLAIM_OR_TEMPORARY.test(name) || name.startsWith('x.'));
    recordFaults({ faultsInjected: 1, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });

  it.each([
    ['SIGTERM', TERMINATED],
    ['SIGINT', INTERRUPTED],
  ] as const)('batch: %s exits %i; results.jsonl says which prompt was interrupted and which are pending', async (signal, status) => {
    const dir = await caseDir();
    const gated = await writeFakeFfmpeg(dir, 'gated');
    const file = join(dir, 'prompts.txt');
    await writeFile(file, 'one\ntwo\n');
    const out = join(dir, 'out');
    const run = startCli(['batch', file, '-o', out, ...FAST, '--ffmpeg', gated]);
    await waitFor('ffmpeg to start', () => existsSync(join(dir, 'ffmpeg.pid')));
    run.child.kill(signal);
    const result = await run.done;
    expect(result.code, result.stderr).toBe(status);
    expect((await readResults(out)).map((row) => [row.line, row.status])).toEqual([
      [1, 'interrupted'],
      [2, 'pending'],
    ]);
    const left = (await readdir(out)).filter((name) => name !== 'results.jsonl');
    recordFaults({ faultsInjected: 1, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });
});

describe('after SIGKILL', () => {
  it('ffmpeg dies with the CLI; the next run in the folder removes the dead run\'s claims and temporaries, nothing else', async () => {
    const dir = await caseDir();
    const hang = await writeFakeFfmpeg(dir, 'hang');
    const run = startCli(['generate', 'a red ball', '-o', join(dir, 'k.mp4'), ...FAST, '--ffmpeg', hang]);
    await waitFor('ffmpeg to start', () => existsSync(join(dir, 'ffmpeg.pid')));
    const ffmpeg = fakePid(dir);
    run.child.kill('SIGKILL');
    await run.done;
    await waitFor('the orphaned ffmpeg to die', () => processGone(ffmpeg), 10_000);
    const stale = (await readdir(dir)).filter((name) => CLAIM_OR_TEMPORARY.test(name)).sort();
    expect(stale).toHaveLength(3);
    expect(stale.filter((name) => name.endsWith('.lock'))).toEqual(['.k.json.lock', '.k.mp4.lock']);
    expect(stale.find((name) => name.endsWith('.part'))).toMatch(/^\.k\.mp4\.\d+-[0-9a-f]+\.part$/);

    // Look-alikes no claim of this tool names: the user's, never touched.
    const mine = { '.notes.mp4.4242-abcd.part': 'mine', '.mine.lock': 'not a claim', 'k.mp4.lock': 'mine' };
    for (const [name, content] of Object.entries(mine)) await writeFile(join(dir, name), content);
    const next = await cli(['generate', 'a blue cube', '-o', join(dir, 'other.mp4'), ...FAST]);
    expect(next.code, next.stderr).toBe(0);
    const after = await readdir(dir);
    const left = after.filter((name) => CLAIM_OR_TEMPORARY.test(name) && !(name in mine));
    const userFilesLost = Object.entries(mine).filter(([name, content]) => !after.includes(name) || readFileSync(join(dir, name), 'utf8') !== content).length;
    recordFaults({ faultsInjected: 1, filesLeftBehind: left.length, userFilesLost });
    expect(left).toEqual([]);
    expect(userFilesLost).toBe(0);
    // The dead run's output is free again.
    const again = await cli(['generate', 'a red ball', '-o', join(dir, 'k.mp4'), ...FAST]);
    expect(again.code, again.stderr).toBe(0);
  });

  it('a claim whose pid now belongs to another process is stale; one from another host is left to its owner', async () => {
    const dir = await caseDir();
    // This test process is alive, but it is not the claimant: its kernel start time differs.
    const part = `.reused.mp4.${process.pid}-0badf00d.part`;
    const reused = { tool: 'ondevice-sora', pid: process.pid, host: hostname(), started: '2020-01-01T00:00:00.000Z', command: 'generate', processStart: '1', part };
    await writeFile(join(dir, '.reused.mp4.lock'), JSON.stringify(reused));
    await writeFile(join(dir, part), 'half a video');
    const remote = { ...reused, host: 'another-host.example', part: `.remote.mp4.${process.pid}-0badf00d.part` };
    await writeFile(join(dir, '.remote.mp4.lock'), JSON.stringify(remote));
    const result = await cli(['generate', 'a red ball', '-o', join(dir, 'reused.mp4'), ...FAST]);
    expect(result.code, result.stderr).toBe(0);
    expect(existsSync(join(dir, part))).toBe(false);
    expectOneLineError(
      await cli(['generate', 'a red ball', '-o', join(dir, 'remote.mp4'), ...FAST]),
      IO,
      `remote.mp4 is claimed by another run: generate, pid ${process.pid} on another-host.example`,
      'if that run is gone, remove',
    );
    recordFaults({ faultsInjected: 2 });
    expect(existsSync(join(dir, '.remote.mp4.lock'))).toBe(true);
  });

  it('batch: results.jsonl is true up to the last finished prompt; --resume trusts the files over it', async () => {
    const dir = await caseDir();
    const file = join(dir, 'prompts.txt');
    await writeFile(file, 'one\ntwo\nthree\n');
    const out = join(dir, 'out');
    const run = startCli(['batch', file, '-o', out, ...FAST]);
    const resultsFile = join(out, 'results.jsonl');
    await waitFor('the first prompt to be recorded done', () => existsSync(resultsFile) && readFileSync(resultsFile, 'utf8').includes('"status":"done"'));
    run.child.kill('SIGKILL');
    await run.done;
    const killed = await readResults(out);
    expect(killed[0]).toMatchObject({ line: 1, status: 'done' });
    for (const row of killed) expect(row.status === 'done' ? existsSync(row.sidecar!) : row.status === 'pending').toBe(true);

    // The first video is damaged after the fact: results.jsonl still says done, the file on disk says otherwise.
    await truncate(join(out, '0001-one.mp4'), 100);
    const resumed = await cli(['batch', file, '-o', out, ...FAST, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const rows = await readResults(out);
    expect(rows[0]).toMatchObject({ line: 1, status: 'done' });
    expect(rows.map((row) => row.status).every((status) => status === 'done' || status === 'skipped')).toBe(true);
    const sidecar = JSON.parse(await readFile(join(out, '0001-one.json'), 'utf8')) as { output: { bytes: number } };
    expect(sidecar.output.bytes).toBeGreaterThan(100);
    const left = (await readdir(out)).filter((name) => CLAIM_OR_TEMPORARY.test(name));
    recordFaults({ faultsInjected: 2, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });
});

describe('an encoder that exits 0 is checked before its output is committed', () => {
  it.each([
    ['silent', 'exited 0 but wrote no mp4 data'],
    ['garbage', 'exited 0 but what it wrote is no readable MP4'],
    ['short', 'exited 0 but wrote 2 of'],
  ] as const)('a fake ffmpeg (%s): exit 7 and nothing left', async (kind, message) => {
    const dir = await caseDir();
    const fake = await writeFakeFfmpeg(dir, kind);
    const result = await cli(['generate', 'a red ball', '-o', join(dir, 'x.mp4'), ...FAST, '--ffmpeg', fake, '--quiet']);
    expectOneLineError(result, IO, message);
    const left = (await readdir(dir)).filter((name) => !name.startsWith('ffmpeg'));
    recordFaults({ faultsInjected: 1, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });

  it('with no ffprobe anywhere (the bundled ffmpeg has none), an MP4 short of frames is still caught', async () => {
    const dir = await caseDir();
    const fake = await writeFakeFfmpeg(dir, 'short');
    // PATH holds only ffmpeg, for the fake to run: no ffprobe beside the fake nor on PATH.
    const path = await caseDir();
    await symlink((await findFfmpeg(undefined)).path, join(path, 'ffmpeg'));
    const result = await cli(['generate', 'a red ball', '-o', join(dir, 'x.mp4'), ...FAST, '--ffmpeg', fake, '--quiet'], { PATH: path });
    expectOneLineError(result, IO, 'exited 0 but wrote 2 of');
    const left = (await readdir(dir)).filter((name) => !name.startsWith('ffmpeg'));
    recordFaults({ faultsInjected: 1, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });

  it('batch with a silent ffmpeg: every line fails, no video', async () => {
    const dir = await caseDir();
    const fake = await writeFakeFfmpeg(dir, 'silent');
    const file = join(dir, 'prompts.txt');
    await writeFile(file, 'one\n');
    const out = join(dir, 'out');
    const result = await cli(['batch', file, '-o', out, ...FAST, '--ffmpeg', fake]);
    expect(result.code, result.stderr).toBe(IO);
    expect((await readResults(out)).map((row) => row.status)).toEqual(['failed']);
    const left = (await readdir(out)).filter((name) => name !== 'results.jsonl');
    recordFaults({ faultsInjected: 1, filesLeftBehind: left.length });
    expect(left).toEqual([]);
  });
});
