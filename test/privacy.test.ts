/**
 * What the tool leaves on the user's system besides its outputs, seen from outside: the real CLI in a child process
 * whose HOME is a fresh folder and whose environment does not turn ONNX Runtime's telemetry off. ONNX Runtime 1.30
 * otherwise writes /tmp/mat-debug-<pid>.log, keeps an event store under ~/.cache/Microsoft, tries to upload it, and
 * crashes on any argument of 16 KB or more (src/runtime/ort-telemetry.ts).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, ROOT, TEST_MODEL_ENV } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';

const BIN = join(ROOT, 'bin', 'ondevice-sora');
/** The switch ONNX Runtime reads; a user's environment does not have it. */
const ORT_TELEMETRY_ENV = 'ORT_DISABLE_TELEMETRY';
const TINY = TEST_MODEL_ENV.ONDEVICE_SORA_MODEL;

interface Observed {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  /** The process id and the id of every thread seen while it ran (its ONNX Runtime workers among them). */
  readonly ids: ReadonlySet<number>;
  /** The mat-debug logs there were before it started, with their modification times. */
  readonly logsBefore: ReadonlyMap<string, number>;
}

let home: string;
let work: string;

beforeAll(async () => {
  assertBuilt();
  home = await mkdtemp(join(tmpdir(), 'sora-home-'));
  work = await mkdtemp(join(tmpdir(), 'sora-privacy-'));
});

afterAll(async () => {
  await rm(home, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

/** The user's environment as a fresh account has it: no telemetry switch, HOME and the cache folders ours. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, NO_COLOR: '1', ...TEST_MODEL_ENV };
  delete env[ORT_TELEMETRY_ENV];
  delete env.XDG_CACHE_HOME;
  return env;
}

/** Runs `command args` and collects the ids of its processes and their threads while they run. */
function observe(command: string, args: readonly string[], cwd = work): Promise<Observed> {
  const logsBefore = telemetryLogs();
  return new Promise((resolve) => {
    const child = spawn(command, [...args], { cwd, env: userEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const ids = new Set<number>();
    const sample = (): void => {
      for (const pid of processTree(child.pid!)) {
        ids.add(pid);
        for (const task of safeReaddir(`/proc/${pid}/task`)) ids.add(Number(task));
      }
    };
    const timer = setInterval(sample, 5);
    child.on('close', (code, signal) => {
      clearInterval(timer);
      resolve({ code, signal, stderr, ids, logsBefore });
    });
  });
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** `pid` and its descendants (strace runs node as its child). */
function processTree(pid: number): number[] {
  const children = safeReaddir(`/proc/${pid}/task`).flatMap((task) => {
    try {
      return readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
  return [pid, ...children.flatMap(processTree)];
}

const LOG_DIRS = [...new Set(['/tmp', tmpdir()])];

/** Every mat-debug log in the temp folders, with its modification time. */
function telemetryLogs(): Map<string, number> {
  const logs = new Map<string, number>();
  for (const dir of LOG_DIRS) {
    for (const name of safeReaddir(dir).filter((entry) => entry.startsWith('mat-debug-'))) {
      const path = join(dir, name);
      try {
        logs.set(path, statSync(path).mtimeMs);
      } catch {
        // removed meanwhile
      }
    }
  }
  return logs;
}

/**
 * The logs this run wrote: named after its pid or one of its thread ids, and new or changed since it started.
 * Other processes on the machine leave such logs too, and ids are reused, so an old log of a dead process can carry
 * one of this run's ids.
 */
function telemetryLeftovers(observed: Observed): string[] {
  const now = telemetryLogs();
  const logs = [...observed.ids].flatMap((id) =>
    LOG_DIRS.map((dir) => join(dir, `mat-debug-${id}.log`)).filter(
      (path) => now.has(path) && now.get(path) !== observed.logsBefore.get(path),
    ),
  );
  const store = join(home, '.cache', 'Microsoft');
  return existsSync(store) ? [...logs, store] : logs;
}

const cliArgs = (...args: string[]): string[] => [BIN, ...args];
const SMALL = ['--resolution', '128x128', '--steps', '2', '--seed', '1'];

describe('no ONNX Runtime telemetry (a fresh HOME, ORT_DISABLE_TELEMETRY unset)', () => {
  it('generate with a 17 KB prompt argument: no crash, no mat-debug log for its pid or threads, no ~/.cache/Microsoft', async () => {
    const prompt = 'a red ball bouncing on a beach '.repeat(600);
    expect(prompt.length).toBeGreaterThan(16 * 1024);
    const observed = await observe(process.execPath, cliArgs('generate', prompt, '-o', join(work, 'long.mp4'), ...SMALL));
    recordFaults({ badInputs: 1 });
    expect(observed.signal, observed.stderr).toBeNull();
    expect(observed.code, observed.stderr).toBe(0);
    expect(observed.ids.size).toBeGreaterThan(2); // the workers were seen
    expect(telemetryLeftovers(observed)).toEqual([]);
  });

  it('models verify (ONNX Runtime in worker threads) and doctor (ONNX Runtime in the main thread) leave nothing', async () => {
    const runs = [cliArgs('models', 'verify', TINY), cliArgs('doctor')];
    const observed = await Promise.all(runs.map((args) => observe(process.execPath, args)));
    for (const [i, run] of observed.entries()) {
      expect(run.signal, run.stderr).toBeNull();
      expect([0, 8], run.stderr).toContain(run.code); // doctor says 8 where ffmpeg or the like is missing
      expect(telemetryLeftovers(run).filter((path) => path.includes('mat-debug')), runs[i]!.join(' ')).toEqual([]);
    }
    expect(existsSync(join(home, '.cache', 'Microsoft'))).toBe(false);
  });

  it('the ONNX backend used as a library (no bin/ondevice-sora) turns it off before its workers start', async () => {
    const script = join(ROOT, 'test', 'fixtures', 'scripts', 'backend-as-library.ts');
    const observed = await observe(process.execPath, ['--import', 'tsx', script, TINY], ROOT);
    expect(observed.code, observed.stderr).toBe(0);
    expect(telemetryLeftovers(observed)).toEqual([]);
  });

  it('generate makes no network attempt (every connect/sendto traced with strace)', async (context) => {
    const strace = straceUsable();
    if (strace !== true) {
      context.skip(`strace cannot trace here: ${strace}`);
      return;
    }
    const trace = join(work, 'net.trace');
    const args = ['-f', '-qq', '-e', 'trace=connect,sendto,sendmsg', '-o', trace, process.execPath];
    const observed = await observe('strace', [...args, ...cliArgs('generate', 'a blue square', '-o', join(work, 'net.mp4'), ...SMALL)]);
    expect(observed.code, observed.stderr).toBe(0);
    const attempts = (await readFile(trace, 'utf8')).split('\n').filter((line) => /AF_INET6?|sin6?_port/.test(line));
    expect(attempts).toEqual([]);
    expect(telemetryLeftovers(observed)).toEqual([]);
  });
});

/** true, or why strace cannot trace a child here (not installed, ptrace not permitted). */
function straceUsable(): true | string {
  try {
    execFileSync('strace', ['-f', '-qq', '-e', 'trace=connect', '-o', '/dev/null', 'true'], { stdio: 'pipe' });
    return true;
  } catch (error) {
    return String((error as { stderr?: unknown }).stderr ?? error).trim().split('\n')[0] || 'not installed';
  }
}
