/**
 * Starting ONNX Runtime's worker threads, and starting them early: a worker loads onnxruntime-node (tens of ms, more
 * on a busy machine) on a thread of its own, so a command that will run blocks can start its workers before it
 * imports its own modules, and OnnxBackend adopts them instead of starting new ones. Started early, they also make a
 * warm-up session before they are ready (ORT's one-time set-up, ~40 ms, which the first block's load paid before).
 * Kept apart from onnx-backend.ts so that starting them loads nothing else.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { packagePath } from '../package-root.js';
import type { WorkerData } from './onnx-worker.js';
import { disableOrtTelemetry } from './ort-telemetry.js';

/**
 * Starts the worker from dist/ (its own bundle entry, scripts/build.mjs: this code sits in a chunk, not beside it),
 * or from the TypeScript sources when tests run them. Node 20 ignores loader hooks given to a worker through
 * `execArgv: ['--import', 'tsx']` (checked: ERR_UNKNOWN_FILE_EXTENSION), so the source case registers tsx inside
 * the worker first.
 */
export function startWorker(workerData: WorkerData): Worker {
  disableOrtTelemetry();
  const worker = newWorker(workerData);
  trackStart(worker);
  return worker;
}

function newWorker(workerData: WorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(packagePath('dist', 'runtime', 'onnx-worker.js'), { workerData });
  const tsx = createRequire(import.meta.url).resolve('tsx/cjs/api');
  const entry = packagePath('src', 'runtime', 'onnx-worker.ts');
  const code = `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(entry)});`;
  return new Worker(code, { eval: true, workerData });
}

/** Workers still loading onnxruntime-node: its first message (or its end) says a worker is past that. */
const starting = new Set<Promise<void>>();

function trackStart(worker: Worker): void {
  const started = new Promise<void>((resolve) => {
    worker.once('message', () => resolve());
    worker.once('error', () => resolve());
    worker.once('exit', () => resolve());
  });
  starting.add(started);
  void started.then(() => starting.delete(started));
}

/**
 * Resolves once every worker started so far is past onnxruntime-node's initialisation, or gone: a process that
 * exits (process.exit) while one is inside it is aborted (SIGABRT) instead of ending with its own status.
 */
export async function workersStarted(): Promise<void> {
  await Promise.all([...starting]);
}

interface Started {
  readonly worker: Worker;
  readonly workerData: WorkerData;
  ready: boolean;
  readonly onMessage: (message: unknown) => void;
  readonly onGone: () => void;
}

const started: Started[] = [];

/**
 * Starts `count` workers for the next OnnxBackend with this workerData. Until one is adopted it keeps the process
 * alive only while starting (a worker stopped inside onnxruntime-node's initialisation would abort the process, see
 * WorkerChannel.close); one that fails or exits is dropped, and the backend starts its own, which report the failure.
 */
export function prestartWorkers(workerData: WorkerData, count = 2): void {
  for (let i = 0; i < count; i++) {
    // Warmed up with the backend's default session options before 'ready' (see WorkerData.warmUp).
    const worker = startWorker({ ...workerData, warmUp: { mmapWeights: false, activationArena: true } });
    const entry: Started = {
      worker,
      workerData,
      ready: false,
      onMessage: (message) => {
        if (typeof message === 'object' && message !== null && 'type' in message) {
          entry.ready = true;
          worker.unref();
        }
      },
      onGone: () => {
        const index = started.indexOf(entry);
        if (index >= 0) started.splice(index, 1);
      },
    };
    worker.on('message', entry.onMessage);
    worker.once('error', entry.onGone);
    worker.once('exit', entry.onGone);
    started.push(entry);
  }
}

/** A prestarted worker with this workerData, handed over with whether its 'ready' message came already. */
export function adoptWorker(workerData: WorkerData): { readonly worker: Worker; readonly ready: boolean } | undefined {
  const index = started.findIndex((entry) => entry.workerData.ortLogLevel === workerData.ortLogLevel);
  if (index < 0) return undefined;
  const [entry] = started.splice(index, 1);
  const { worker, ready, onMessage, onGone } = entry!;
  // Synchronous with the new owner's listeners (WorkerChannel's constructor): no message falls between the two.
  worker.off('message', onMessage);
  worker.off('error', onGone);
  worker.off('exit', onGone);
  return { worker, ready };
}
