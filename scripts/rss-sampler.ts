/**
 * Peak RSS of a process as an outside observer sees it (Linux): the command is started as a child and its
 * /proc/<pid>/status is read every few milliseconds from this process. Not the tool's own figure: the tool resets
 * its kernel high-water mark (VmHWM) while it runs, which is also why `/usr/bin/time` under-reports it. VmHWM is
 * read at every sample too: each value it shows is an RSS the process really had, so the highest of both is a
 * peak that misses less between two samples. Used by test/memory-budget.test.ts and scripts/bench-memory.ts.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';

export interface RssSample {
  /** Milliseconds since the process started. */
  readonly ms: number;
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
}

export interface SampledRun {
  /** Exit status (128 + signal number when a signal ended it). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Highest VmRSS sampled. */
  readonly sampledPeak: number;
  /** Highest VmHWM seen: the kernel's mark between the tool's resets. */
  readonly highWaterMark: number;
  /** The larger of the two: the peak RSS this run is judged by. */
  readonly peakRss: number;
  readonly samples: number;
  /** Every sample whose RSS was a new high, for a look at where the peak came from. */
  readonly rises: readonly RssSample[];
}

export interface SampleOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Milliseconds between two reads (default 2). */
  readonly intervalMs?: number;
}

const KB_FIELD = /^(VmRSS|VmHWM|RssAnon|RssFile):\s+(\d+) kB$/gm;

/** VmRSS, VmHWM, RssAnon and RssFile of a live process in bytes; null once it is gone. */
export function readStatus(pid: number): Record<'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile', number> | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const fields = { VmRSS: 0, VmHWM: 0, RssAnon: 0, RssFile: 0 };
  for (const [, key, kb] of text.matchAll(KB_FIELD)) fields[key as keyof typeof fields] = Number(kb) * 1024;
  return fields;
}

/** Runs `command args` to its end while sampling its memory from outside. */
export function runSampled(command: string, args: readonly string[], options: SampleOptions = {}): Promise<SampledRun> {
  if (process.platform !== 'linux') return Promise.reject(new Error('sampling RSS from outside needs /proc (Linux)'));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const start = performance.now();
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let sampledPeak = 0;
    let highWaterMark = 0;
    let samples = 0;
    const rises: RssSample[] = [];
    const sample = (): void => {
      const status = child.pid === undefined ? null : readStatus(child.pid);
      // A zombie (exited, not yet reaped) shows no VmRSS line: reads as 0, which changes no maximum.
      if (status === null) return;
      samples++;
      highWaterMark = Math.max(highWaterMark, status.VmHWM);
      if (status.VmRSS > sampledPeak) {
        sampledPeak = status.VmRSS;
        rises.push({ ms: Math.round(performance.now() - start), rss: status.VmRSS, anon: status.RssAnon, file: status.RssFile });
      }
    };
    const timer = setInterval(sample, options.intervalMs ?? 2);
    child.once('spawn', sample);
    child.once('error', (error) => {
      clearInterval(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearInterval(timer);
      const status = code ?? 128 + (signal === null ? 0 : constants.signals[signal]);
      resolve({ code: status, stdout, stderr, sampledPeak, highWaterMark, peakRss: Math.max(sampledPeak, highWaterMark), samples, rises });
    });
  });
}
