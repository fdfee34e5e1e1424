/**
 * Progress of `models pull` and `models convert` on stderr. On a terminal one redrawn line: a bar over all the
 * bytes still to download with the amount, the rate and the ETA, then a bar over the converter's units. Otherwise
 * plain lines, each complete: one when a file starts and ends, and at most one every few seconds in between.
 */
import type { ConverterEvent } from '../convert/run-converter.js';
import { formatBytes } from './format.js';
import { drawBar, formatDuration } from './progress.js';

const REDRAW_MS = 100;
const PLAIN_EVERY_MS = 5_000;
/** The rate is measured over this trailing window, so that it follows the current speed. */
const RATE_WINDOW_MS = 10_000;

export interface DownloadProgress {
  fileStart(label: string, bytes: number, present: number): void;
  bytes(label: string, present: number): void;
  fileDone(label: string): void;
  waiting(label: string, pid: number): void;
  finish(): void;
}

export interface ConvertProgress {
  event(event: ConverterEvent | { readonly kind: 'tokenizer'; readonly text: string }): void;
  finish(): void;
}

function lineWriter(stream: NodeJS.WriteStream) {
  const tty = stream.isTTY === true;
  let drawn = false;
  return {
    tty,
    /** A redrawn line on a terminal. */
    draw(line: string): void {
      stream.write(`\r${line}\x1b[K`);
      drawn = true;
    },
    /** A line that stays. */
    line(line: string): void {
      stream.write(drawn ? `\r${line}\x1b[K\n` : `${line}\n`);
      drawn = false;
    },
    finish(): void {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}

function rate(bytesPerMs: number): string {
  return `${formatBytes(bytesPerMs * 1000)}/s`;
}

/** `total`: bytes the whole pull still has to download (for the bar and the ETA). */
export function downloadProgress(stream: NodeJS.WriteStream, total: number, now: () => number = Date.now): DownloadProgress {
  const out = lineWriter(stream);
  let received = 0; // bytes received in this run, all files
  const samples: { at: number; received: number }[] = [];
  const files = new Map<string, { bytes: number; present: number; started: number; lastLine: number }>();
  let lastDraw = 0;

  const speed = (): number | undefined => {
    const first = samples[0];
    const last = samples.at(-1);
    return first === undefined || last === undefined || last.at === first.at ? undefined : (last.received - first.received) / (last.at - first.at);
  };
  const eta = (remaining: number): string => {
    const perMs = speed();
    return perMs === undefined || perMs <= 0 ? '' : `ETA ${formatDuration(remaining / perMs)}`;
  };
  const render = (label: string, force: boolean): void => {
    const file = files.get(label);
    if (file === undefined) return;
    const t = now();
    const perMs = speed();
    if (out.tty) {
      if (!force && t - lastDraw < REDRAW_MS) return;
      lastDraw = t;
      const parts = [`downloading ${drawBar(received, total)} ${formatBytes(received)}/${formatBytes(total)}`];
      if (perMs !== undefined) parts.push(rate(perMs), eta(total - received));
      out.draw(`${parts.join('  ')}  ${label}`);
      return;
    }
    if (!force && t - file.lastLine < PLAIN_EVERY_MS) return;
    file.lastLine = t;
    const share = file.bytes > 0 ? Math.floor((file.present / file.bytes) * 100) : 100;
    const tail = perMs === undefined ? '' : `, ${rate(perMs)}, ${eta(total - received)}`;
    out.line(`download ${label}: ${formatBytes(file.present)} of ${formatBytes(file.bytes)} (${share}%)${tail}`);
  };

  return {
    fileStart(label, bytes, present) {
      files.set(label, { bytes, present, started: now(), lastLine: now() });
      if (out.tty) render(label, true);
      else out.line(`download ${label}: ${formatBytes(bytes)}${present > 0 ? `, resuming at ${formatBytes(present)}` : ''}`);
    },
    bytes(label, present) {
      const file = files.get(label);
      if (file === undefined) return;
      received += Math.max(0, present - file.present);
      file.present = present;
      samples.push({ at: now(), received });
      while (samples.length > 2 && samples[0]!.at < now() - RATE_WINDOW_MS) samples.shift();
      render(label, false);
    },
    fileDone(label) {
      const file = files.get(label);
      if (file === undefined) return;
      out.line(`downloaded ${label}: ${formatBytes(file.bytes)} in ${formatDuration(now() - file.started)}`);
      files.delete(label);
    },
    waiting(label, pid) {
      out.line(`waiting for process ${pid}, which is downloading ${label}`);
    },
    finish: () => out.finish(),
  };
}

export function convertProgress(stream: NodeJS.WriteStream, now: () => number = Date.now): ConvertProgress {
  const out = lineWriter(stream);
  let start: { at: number; index: number } | undefined;
  return {
    event(event) {
      if (event.kind !== 'unit') return out.line(event.text);
      if (!out.tty) return out.line(`convert ${event.index}/${event.total} ${event.blocks}`);
      // A unit line arrives as the unit starts: index − 1 are done.
      const done = event.index - 1;
      start ??= { at: now(), index: done };
      const perUnit = done > start.index ? (now() - start.at) / (done - start.index) : undefined;
      const eta = perUnit === undefined ? '' : `  ETA ${formatDuration(perUnit * (event.total - done))}`;
      out.draw(`converting ${drawBar(done, event.total)} ${event.index}/${event.total} ${event.blocks}${eta}`);
    },
    finish: () => out.finish(),
  };
}
