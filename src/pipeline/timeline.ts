/**
 * Every block load, run and unload of a run (plus the scheduler's page-cache prefetches and evictions) with start
 * and end times, so overlap and waiting can be seen rather than guessed: `--trace` saves it in the sidecar in Chrome
 * trace format (chrome://tracing, Perfetto), and the CI-DL benchmark sums it.
 */
import { performance } from 'node:perf_hooks';
import {
  isResident,
  wrapBackend,
  type Backend,
  type BlockHandle,
  type BlockSource,
  type RunInputs,
  type RunOptions,
  type RunOutputs,
  type UnloadOptions,
} from '../runtime/backend.js';

export const TIMELINE_KINDS = ['load', 'run', 'unload', 'prefetch', 'evict'] as const;
export type TimelineKind = (typeof TIMELINE_KINDS)[number];

export interface TimelineEvent {
  readonly kind: TimelineKind;
  readonly block: string;
  /** Milliseconds since the timeline was created (performance.now()). */
  readonly startMs: number;
  readonly endMs: number;
  /** load/unload/evict: the block's weight bytes; run: host input plus output tensor bytes; prefetch: bytes read. */
  readonly bytes: number;
}

/** A value over time, e.g. the peak RSS of each scheduling window. */
export interface TimelineSample {
  readonly name: string;
  readonly atMs: number;
  readonly value: number;
}

export interface TimelineJson {
  readonly events: readonly TimelineEvent[];
  readonly samples: readonly TimelineSample[];
}

interface ChromeEvent {
  readonly name: string;
  readonly ph: 'X' | 'C' | 'M';
  readonly pid: number;
  readonly tid?: number;
  /** Microseconds. */
  readonly ts?: number;
  readonly dur?: number;
  readonly cat?: string;
  readonly args?: Record<string, unknown>;
}

export interface ChromeTrace {
  readonly traceEvents: readonly ChromeEvent[];
  readonly displayTimeUnit: 'ms';
  /** The format's free-form field: `originMs`, how long after the process started the trace's time 0 is. */
  readonly otherData?: { readonly originMs: number };
}

// One row per kind of work, so a load running beside a run shows as two overlapping bars.
const LANES: Readonly<Record<TimelineKind, { tid: number; name: string }>> = {
  run: { tid: 1, name: 'run' },
  load: { tid: 2, name: 'load' },
  unload: { tid: 3, name: 'unload' },
  prefetch: { tid: 4, name: 'page cache' },
  evict: { tid: 4, name: 'page cache' },
};
const PID = 1;

export class Timeline {
  /** performance.now() when the timeline was created: milliseconds since the process started (its time origin). */
  readonly #origin = performance.now();
  readonly #events: TimelineEvent[] = [];
  readonly #samples: TimelineSample[] = [];

  now(): number {
    return performance.now() - this.#origin;
  }

  /** Times `work` as one event; a failed operation is not recorded. */
  async record<T>(kind: TimelineKind, block: string, bytes: number | ((result: T) => number), work: () => Promise<T>): Promise<T> {
    const startMs = this.now();
    const result = await work();
    const size = typeof bytes === 'number' ? bytes : bytes(result);
    this.#events.push({ kind, block, startMs, endMs: this.now(), bytes: size });
    return result;
  }

  sample(name: string, value: number): void {
    this.#samples.push({ name, atMs: this.now(), value });
  }

  get events(): readonly TimelineEvent[] {
    return this.#events;
  }

  toJSON(): TimelineJson {
    return { events: [...this.#events], samples: [...this.#samples] };
  }

  toChromeTrace(): ChromeTrace {
    const us = (ms: number): number => Math.round(ms * 1000);
    const lanes = new Map(Object.values(LANES).map((lane) => [lane.tid, lane.name]));
    const names: ChromeEvent[] = [...lanes].map(([tid, name]) => ({ name: 'thread_name', ph: 'M', pid: PID, tid, args: { name } }));
    const spans: ChromeEvent[] = this.#events.map((event) => ({
      name: event.block,
      cat: event.kind,
      ph: 'X',
      pid: PID,
      tid: LANES[event.kind].tid,
      ts: us(event.startMs),
      dur: us(event.endMs - event.startMs),
      args: { kind: event.kind, bytes: event.bytes },
    }));
    const counters: ChromeEvent[] = this.#samples.map((sample) => ({
      name: sample.name,
      ph: 'C',
      pid: PID,
      ts: us(sample.atMs),
      args: { [sample.name]: sample.value },
    }));
    // The origin tells start-up cost (process start to the first block run) from the trace alone.
    const otherData = { originMs: Math.round(this.#origin * 1000) / 1000 };
    return { traceEvents: [...names, ...spans, ...counters], displayTimeUnit: 'ms', otherData };
  }
}

/** Host tensor bytes: resident tensors do not move. */
function hostBytes(tensors: RunInputs | RunOutputs): number {
  return Object.values(tensors).reduce((sum, value) => sum + (isResident(value) ? 0 : value.data.byteLength), 0);
}

/** `backend` with every load, run and unload recorded in `timeline`; the block provider above is unaware. */
export function recordedBackend(backend: Backend, timeline: Timeline): Backend {
  const weights = new Map<number, number>();
  return wrapBackend(backend, {
    async load(block: BlockSource): Promise<BlockHandle> {
      const handle = await timeline.record('load', block.name, block.weightBytes, () => backend.load(block));
      weights.set(handle.id, block.weightBytes);
      return handle;
    },
    run(handle: BlockHandle, inputs: RunInputs, options?: RunOptions): Promise<RunOutputs> {
      // Counted before the call: transferInputs detaches the input buffers.
      const inputBytes = hostBytes(inputs);
      return timeline.record('run', handle.name, (outputs) => inputBytes + hostBytes(outputs), () =>
        backend.run(handle, inputs, options),
      );
    },
    async unload(handle: BlockHandle, options?: UnloadOptions): Promise<void> {
      await timeline.record('unload', handle.name, weights.get(handle.id) ?? 0, () => backend.unload(handle, options));
      weights.delete(handle.id);
    },
  });
}
