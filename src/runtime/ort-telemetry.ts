/**
 * ONNX Runtime's telemetry, off. onnxruntime-node 1.30 starts Microsoft's telemetry system whenever it creates its
 * environment: it writes /tmp/mat-debug-<pid>.log and an event store under ~/.cache/Microsoft/DeveloperTools
 * (device id, OS, executable path), tries to upload it (DNS lookups), and it reads the process's command line, which
 * crashes the process (SIGSEGV) when one argument is 16 KB or longer. `ORT_DISABLE_TELEMETRY=1` in the process
 * environment before that environment exists prevents all of it (runtime-facts, last section; checked again here).
 *
 * Only the main thread can set it: the library reads the process environment (getenv), and a worker thread's
 * `process.env` is a copy that native code never sees. A variable the main thread sets is seen by native code in
 * workers started before or after (measured: a worker creating its first session after the main thread set it
 * writes no log), and child processes inherit it.
 */
import { isMainThread } from 'node:worker_threads';

export const ORT_TELEMETRY_ENV = 'ORT_DISABLE_TELEMETRY';

/** Call before anything loads onnxruntime-node (every entry point and backend of the tool does). */
export function disableOrtTelemetry(): void {
  if (isMainThread) {
    process.env[ORT_TELEMETRY_ENV] = '1';
    return;
  }
  // In a worker, setting it would only change this thread's copy; the copy says whether the main thread did.
  if (process.env[ORT_TELEMETRY_ENV] !== '1') {
    throw new Error(`ONNX Runtime telemetry is on: set ${ORT_TELEMETRY_ENV}=1 in the main thread before starting this worker`);
  }
}
