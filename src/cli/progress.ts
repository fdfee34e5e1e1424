import * as z from 'zod';
import type { GenerateProgress } from '../pipeline/generate.js';

/**
 * Progress of a generation on stderr: a redrawn bar with ETA on a terminal, one plain line per event otherwise
 * (logs and CI keep every line readable).
 */
export interface ProgressDisplay {
  update(progress: GenerateProgress): void;
  /** Ends the redrawn line so later output starts on a fresh one. */
  finish(): void;
}

const BAR_WIDTH = 24;

/** `[#####-------]` for a share done. */
export function drawBar(done: number, total: number): string {
  const filled = total > 0 ? Math.min(BAR_WIDTH, Math.round((done / total) * BAR_WIDTH)) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
}

export function progressDisplay(stream: NodeJS.WriteStream, now: () => number = Date.now): ProgressDisplay {
  const tty = stream.isTTY === true;
  let drawn = false;
  // The rate is measured from the first event of a counted phase: events arrive after a step is done, and the first
  // step also pays for loading the blocks, so it would be a poor predictor anyway.
  let counting: { label: string; start: number; done: number } | undefined;

  const write = (line: string): void => {
    if (tty) {
      stream.write(`\r${line}\x1b[K`);
      drawn = true;
    } else {
      stream.write(`${line}\n`);
    }
  };

  const counter = (label: string, done: number, total: number, unit: string): string => {
    if (counting?.label !== label) counting = { label, start: now(), done };
    const count = `${done}/${total} ${unit}`;
    if (!tty) return `${label} ${count}`;
    const bar = `${label.padEnd(9)} ${drawBar(done, total)} ${count}`;
    if (done === counting.done || done >= total) return bar;
    const perItem = (now() - counting.start) / (done - counting.done);
    return `${bar}  ETA ${formatDuration(perItem * (total - done))}`;
  };

  return {
    update(progress) {
      switch (progress.phase) {
        case 'text':
          return write('encoding prompt');
        case 'denoise':
          return write(counter('denoising', progress.step, progress.steps, 'steps'));
        case 'decode':
          return write(counter('decoding', progress.frames, progress.total, 'frames'));
        case 'write':
          return write('writing video');
      }
    },
    finish() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}

/** m:ss, or h:mm:ss from an hour on. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

const count = z.int().min(0);
/** Progress as it comes back from a queue worker: checked before it is shown. */
const ProgressSchema = z.discriminatedUnion('phase', [
  z.object({ phase: z.literal('text') }),
  z.object({ phase: z.literal('denoise'), step: count, steps: count }),
  z.object({ phase: z.literal('decode'), frames: count, total: count }),
  z.object({ phase: z.literal('write') }),
]);

/** One short phrase for a progress event (`denoising 3/10`), or undefined for anything that is not one. */
export function describeProgress(value: unknown): string | undefined {
  const progress = ProgressSchema.safeParse(value);
  if (!progress.success) return undefined;
  const event = progress.data;
  switch (event.phase) {
    case 'text':
      return 'encoding prompt';
    case 'denoise':
      return `denoising ${event.step}/${event.steps}`;
    case 'decode':
      return `decoding ${event.frames}/${event.total}`;
    case 'write':
      return 'writing video';
  }
}

/**
 * Lines for a run of many jobs (eval's generations, bench's sessions): `[3/384] label`, with an ETA from the mean
 * time of the jobs finished so far once there is one. `starting(index, total, label)` is called as job `index`
 * (1-based) starts, so index − 1 jobs are done.
 */
export function jobLines(now: () => number = Date.now): (index: number, total: number, label: string) => string {
  let start: number | undefined;
  return (index, total, label) => {
    start ??= now();
    const done = index - 1;
    const line = `[${index}/${total}] ${label}`;
    if (done === 0) return line;
    const perJob = (now() - start!) / done;
    return `${line}  ETA ${formatDuration(perJob * (total - done))}`;
  };
}
