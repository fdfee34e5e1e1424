/**
 * `batch --queue` and `worker` as users run them: real redis-server (started here on a free port, with a password),
 * real worker processes on the shipped tiny model, real ffmpeg, real signals. The faults: a worker SIGKILLed
 * mid-job, a worker stopped with Ctrl-C mid-job, Redis SIGKILLed and restarted, job data pushed into the queue by
 * hand. Prompts are 2 steps at 128×128 to stay fast.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue, type Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { KEY_PREFIX } from '../src/queue/connection.js';
import { assertBuilt, cli, expectOneLineError, ROOT, TEST_MODEL_ENV, type CliResult } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { leftovers, readResults as results } from './helpers/case-folders.js';
import { tempDir } from './helpers/model-folder.js';
import { hasRedis, REDIS_PASSWORD, startRedis, type RedisServer } from './helpers/redis-server.js';

const FAST = ['--steps', '2', '--resolution', '128x128'];
const STALL = ['--stall-timeout', '3'];
const LINES = 12;

let redis: RedisServer;
let root: string;
let prompts: string;
let local: string;
const started: ChildProcess[] = [];

interface Running {
  readonly child: ChildProcess;
  readonly done: Promise<CliResult>;
}

/** The built CLI as a child process, its output collected; killed at the end if a test left it running. */
function start(args: readonly string[]): Running {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'ondevice-sora'), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', ...TEST_MODEL_ENV },
  });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<CliResult>((resolve) =>
    child.once('close', (code, signal) => resolve({ code: code ?? (signal === 'SIGKILL' ? 137 : -1), stdout, stderr })),
  );
  return { child, done };
}

/** A worker on `queue` writing into `out` (a shared folder exists before its workers start). */
function worker(queue: string, out: string, ...extra: string[]): Running {
  return start(['worker', '--queue', redis.url(queue), '-o', out, ...STALL, ...extra]);
}

/** Resolves once `out` holds a temporary output of process `pid`: that worker is mid-job. */
async function midJob(out: string, pid: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const names = await readdir(out).catch(() => [] as string[]);
    if (names.some((name) => name.endsWith('.part') && name.includes(`.${pid}-`))) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`worker ${pid} never started a job in ${out}`);
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function openQueue(name: string): Queue {
  return new Queue(name, { connection: { host: '127.0.0.1', port: redis.port, password: REDIS_PASSWORD }, prefix: KEY_PREFIX });
}

const visible = async (out: string): Promise<string[]> => (await readdir(out)).filter((name) => !name.startsWith('.')).sort();

const SKIPPED = hasRedis ? '' : ' (skipped: redis-server is not installed; apt-get install redis-server)';

// Several processes on 2 shared cores: more time than a single generation needs.
describe.skipIf(!hasRedis)(`batch --queue and worker on a real Redis${SKIPPED}`, { timeout: 240_000 }, () => {
  beforeAll(async () => {
    assertBuilt();
    redis = await startRedis();
    root = await tempDir('sora-queue-');
    prompts = join(root, 'prompts.jsonl');
    const lines = Array.from({ length: LINES }, (_, i) =>
      JSON.stringify({ prompt: `shape number ${i + 1} moving`, seed: 100 + i, ...(i % 4 === 3 && { steps: 1 }) }),
    );
    await writeFile(prompts, `${lines.join('\n')}\n`);
    local = join(root, 'local');
    const run = await cli(['batch', prompts, '-o', local, ...FAST]);
    expect(run.code, run.stderr).toBe(0);
  });

  afterAll(async () => {
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await redis?.stop();
  });

  it('3 workers drain 12 lines while one is SIGKILLed and one Ctrl-C’d mid-job: the same videos as a local batch, each once', async () => {
    const out = join(root, 'drain');
    await mkdir(out);
    const follower = start(['batch', prompts, '-o', out, ...FAST, '--queue', redis.url('drain')]);
    const workers = [worker('drain', out), worker('drain', out), worker('drain', out)];
    const [killed, stopped, last] = workers as [Running, Running, Running];

    await midJob(out, killed.child.pid!);
    killed.child.kill('SIGKILL');
    await midJob(out, stopped.child.pid!);
    stopped.child.kill('SIGINT');
    const drained = await stopped.done;
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stdout).toMatch(/worker stopped: \d+ done, 0 failed, [01] handed back/);

    const followed = await follower.done;
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toMatch(/12 prompts: 12 done/);
    last.child.kill('SIGINT');
    expect((await last.done).code).toBe(0);

    const rows = await results(out);
    expect(rows.map((row) => [row.line, row.status])).toEqual(Array.from({ length: LINES }, (_, i) => [i + 1, 'done']));
    expect(rows.map((row) => row.seed)).toEqual(Array.from({ length: LINES }, (_, i) => 100 + i));
    // The SIGKILLed worker's claim and temporary were taken over by the job's next attempt: nothing is left.
    expect(await leftovers(out)).toEqual([]);
    // Same names as the local batch, each once; the same bytes: same seeds, same frames, same encoder.
    const names = (await visible(local)).filter((name) => name !== 'results.jsonl');
    expect((await visible(out)).filter((name) => name !== 'results.jsonl')).toEqual(names);
    for (const name of names.filter((n) => n.endsWith('.mp4'))) {
      expect(Buffer.compare(await readFile(join(out, name)), await readFile(join(local, name))), name).toBe(0);
    }
    const retried = rows.filter((row) => (row.attempts ?? 1) > 1);
    expect(retried.length).toBeGreaterThanOrEqual(1); // at least the SIGKILLed worker's job
    console.log(`queue fault test: ${retried.length} of ${LINES} jobs started more than once (lines ${retried.map((row) => row.line).join(', ')})`);
    recordFaults({ faultsInjected: 2, concurrentRuns: 4 });
  });

  it('enqueuing the same file twice adds no job; batch status counts the queue', async () => {
    const out = join(root, 'twice');
    const args = ['--json', 'batch', prompts, '-o', out, ...FAST, '--queue', redis.url('twice'), '--detach'];
    const first = await cli(args);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ added: LINES, alreadyQueued: 0 });
    const second = await cli(args);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ added: 0, alreadyQueued: LINES });
    expect(JSON.parse(second.stdout).jobs).toEqual(JSON.parse(first.stdout).jobs);

    const status = await cli(['--json', 'batch', 'status', '--queue', redis.url('twice')]);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ counts: { waiting: LINES, active: 0, completed: 0 }, workers: 0 });
    expect(status.stdout).not.toContain(REDIS_PASSWORD);
  });

  it('a job whose output an attempt already renamed into place (then died unreported) is reported, not redone', async () => {
    const out = join(root, 'reuse');
    const file = join(root, 'two.txt');
    await writeFile(file, 'first\nsecond\n');
    const args = ['batch', file, '-o', out, ...FAST, '--seed', '3'];
    expect((await cli([...args, '--queue', redis.url('reuse'), '--detach'])).code).toBe(0);
    // What a worker killed between its rename and its report leaves: the finished video and sidecar.
    expect((await cli(args)).code).toBe(0);
    const names = ['0001-first.mp4', '0002-second.mp4'];
    const before = await Promise.all(names.map(async (name) => (await stat(join(out, name))).mtimeMs));

    const running = worker('reuse', out);
    const followed = await cli([...args, '--queue', redis.url('reuse')]);
    expect(followed.code, followed.stderr).toBe(0);
    expect((await results(out)).map((row) => [row.line, row.status, row.seed, row.attempts])).toEqual([
      [1, 'done', 3, 1],
      [2, 'done', 3, 1],
    ]);
    expect(await Promise.all(names.map(async (name) => (await stat(join(out, name))).mtimeMs))).toEqual(before);
    running.child.kill('SIGINT');
    expect((await running.done).stdout).toContain('worker stopped: 2 done, 0 failed, 0 handed back');
  });

  it('Redis SIGKILLed and restarted mid-run: workers and the follower reconnect, every line done once', async () => {
    const out = join(root, 'restart');
    await mkdir(out);
    const file = join(root, 'four.txt');
    await writeFile(file, 'one\ntwo\nthree\nfour\n');
    const follower = start(['batch', file, '-o', out, ...FAST, '--seed', '7', '--queue', redis.url('restart')]);
    const workers = [worker('restart', out), worker('restart', out)];
    await waitFor(async () => existsSync(join(out, '0001-one.json')) || existsSync(join(out, '0002-two.json')), 'a first video');
    await redis.kill();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await redis.restart();

    const followed = await follower.done;
    expect(followed.code, followed.stderr).toBe(0);
    expect((await results(out)).map((row) => [row.line, row.status])).toEqual([1, 2, 3, 4].map((line) => [line, 'done']));
    expect(await visible(out)).toEqual(
      ['0001-one', '0002-two', '0003-three', '0004-four'].flatMap((name) => [`${name}.json`, `${name}.mp4`]).concat('results.jsonl').sort(),
    );
    for (const running of workers) running.child.kill('SIGINT');
    for (const running of workers) expect((await running.done).code).toBe(0);
    recordFaults({ faultsInjected: 1, concurrentRuns: 3 });
  });

  it('job data pushed into the queue by hand is checked: malformed jobs fail once, unretried; another model is refused', async () => {
    const out = join(root, 'bad');
    const file = join(root, 'one.txt');
    await writeFile(file, 'a good prompt\n');
    const enqueued = await cli(['--json', 'batch', file, '-o', out, ...FAST, '--seed', '1', '--queue', redis.url('bad'), '--detach']);
    expect(enqueued.code, enqueued.stderr).toBe(0);
    const queue = openQueue('bad');
    try {
      const good = (await queue.getJob(JSON.parse(enqueued.stdout).jobs[0].id)) as Job;
      const data = good.data as Record<string, any>;
      const bad: Record<string, unknown> = {
        'not-an-object': 'rm -rf /',
        'prompt-number': { ...data, line: { ...data.line, prompt: 42 } },
        'escaping-output': { ...data, line: { ...data.line, output: '../escaped.mp4' } },
        'absolute-output': { ...data, line: { ...data.line, output: '/tmp/escaped.mp4' } },
        'command-field': { ...data, command: 'touch /tmp/pwned' },
        'ffmpeg-flag': { ...data, flags: { ...data.flags, ffmpeg: '/bin/sh' } },
        'bad-steps': { ...data, flags: { ...data.flags, steps: '0' } },
      };
      for (const [id, payload] of Object.entries(bad)) await queue.add('generate', payload, { jobId: id, attempts: 3 });

      const running = worker('bad', out);
      await waitFor(async () => (await queue.getJobCounts('completed', 'failed')).failed === Object.keys(bad).length && (await good.isCompleted()), 'every job to finish');
      for (const id of Object.keys(bad)) {
        const job = (await queue.getJob(id)) as Job;
        expect(job.failedReason, id).toMatch(/^\[INPUT\] job data: /);
        expect(job.attemptsMade, id).toBe(1); // not retried, though 3 attempts were allowed
      }
      expect((await queue.getJob('escaping-output'))!.failedReason).toContain('line.output: must be a plain file name');
      expect((await queue.getJob('ffmpeg-flag'))!.failedReason).toMatch(/flags: unrecognized key: "ffmpeg"/i);
      expect(await visible(root)).not.toContain('escaped.mp4');
      expect(await visible(out)).toEqual(['0001-a-good-prompt.json', '0001-a-good-prompt.mp4']);

      // A job made for another model: handed back untouched, and the worker stops with a one-line error.
      await queue.add('generate', { ...data, model: { name: 'other', fingerprint: 'f'.repeat(64) } }, { jobId: 'other-model' });
      const refused = await running.done;
      expect(refused.code, refused.stderr).toBe(ERROR_EXIT_CODES.MODEL);
      const last = refused.stderr.trimEnd().split('\n').at(-1);
      expect(last).toMatch(/^error: job other-model \(line 1\) wants model other \(ffffffffffff\), this worker has tiny .*handed it back/);
      const other = (await queue.getJob('other-model')) as Job;
      expect(await other.getState()).toBe('waiting');
      expect(other.attemptsMade).toBe(0);
      recordFaults({ badInputs: Object.keys(bad).length + 1 });
    } finally {
      await queue.close();
    }
  });

  it('--queue problems are one-line errors: a malformed URL, an invalid line, a wrong password, no Redis there, a missing or wrong folder', async () => {
    const out = join(root, 'errors');
    await mkdir(out, { recursive: true });
    const url = redis.url('errors');
    expectOneLineError(await cli(['batch', prompts, '-o', out, '--queue', 'http://localhost/x']), ERROR_EXIT_CODES.USAGE, '--queue: must be redis://');
    expectOneLineError(await cli(['batch', prompts, '-o', out, '--queue', 'redis://localhost/a:b']), ERROR_EXIT_CODES.USAGE, '--queue: must be redis://');
    const workerFlag = await cli(['batch', prompts, '-o', out, '--queue', url, '--backend', 'coreml']);
    expectOneLineError(workerFlag, ERROR_EXIT_CODES.USAGE, '--backend: each worker decides it for itself');
    expectOneLineError(await cli(['batch', prompts, '-o', out, '--queue', url, '--no-dl']), ERROR_EXIT_CODES.USAGE, '--no-dl: each worker');
    const mixed = join(root, 'mixed.jsonl');
    await writeFile(mixed, '{"prompt": "fine"}\n{"prompt": 5}\n');
    const partly = await cli(['--json', 'batch', mixed, '-o', out, '--queue', url, '--detach']);
    expect(partly.code, partly.stderr).toBe(ERROR_EXIT_CODES.INPUT);
    expect(JSON.parse(partly.stdout)).toMatchObject({ added: 1, invalid: [2] });
    expect(partly.stderr).toContain('1 line not queued (first: ');
    // The queued line belongs to `out`; a worker given another folder hands it back and stops.
    const elsewhere = join(root, 'elsewhere');
    await mkdir(elsewhere);
    const misplaced = await worker('errors', elsewhere).done;
    expect(misplaced.code, misplaced.stderr).toBe(ERROR_EXIT_CODES.IO);
    expect(misplaced.stderr.trimEnd().split('\n').at(-1)).toMatch(/writes into another output folder than .*elsewhere .*handed it back and stopped/);
    expect(await readdir(elsewhere)).toEqual([]);
    const wrong = url.replace(REDIS_PASSWORD, 'wrong');
    const denied = await cli(['batch', 'status', '--queue', wrong]);
    expectOneLineError(denied, ERROR_EXIT_CODES.QUEUE, 'redis://:***@127.0.0.1', 'WRONGPASS');
    expect(denied.stderr).not.toContain('wrong@');
    expectOneLineError(await cli(['worker', '--queue', 'redis://127.0.0.1:1/x', '-o', out]), ERROR_EXIT_CODES.QUEUE, 'ECONNREFUSED');
    expectOneLineError(await cli(['worker', '--queue', url, '-o', join(out, 'missing')]), ERROR_EXIT_CODES.IO, 'is not a folder');
    recordFaults({ badInputs: 9 });
  });
});
