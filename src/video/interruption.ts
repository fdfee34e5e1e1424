/**
 * SIGINT and SIGTERM while outputs are being written. The first signal runs the registered cleanups (temporary
 * files) at once and aborts `signal` with an INTERRUPTED (SIGINT) or TERMINATED (SIGTERM) SoraError, so the job
 * stops at its next block and the CLI exits 130 or 143, the shells' 128 + signal number. It does not exit on the
 * spot because ending the process while an ONNX Runtime call runs in a worker thread aborts it (SIGABRT, exit
 * 134). A second signal exits at once with the same status.
 *
 * The handlers are installed only while something watches: a command that writes nothing keeps Node's default,
 * which ends the process with the signal.
 */
import { SoraError } from '../errors.js';

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type WatchedSignal = (typeof SIGNALS)[number];

const REASONS: Record<WatchedSignal, () => SoraError> = {
  SIGINT: () => new SoraError('INTERRUPTED', 'interrupted (SIGINT); nothing was written'),
  SIGTERM: () => new SoraError('TERMINATED', 'terminated (SIGTERM); nothing was written'),
};

const controller = new AbortController();
const cleanups = new Set<() => void>();
let watchers = 0;

function onSignal(signal: WatchedSignal): void {
  for (const cleanup of cleanups) cleanup();
  if (controller.signal.aborted) process.exit((controller.signal.reason as SoraError).exitCode);
  controller.abort(REASONS[signal]());
}

export interface InterruptionWatch {
  /** Aborted, with the INTERRUPTED or TERMINATED SoraError as reason, on the first signal. */
  readonly signal: AbortSignal;
  /** Runs `cleanup` (synchronously) as soon as a signal arrives, until dispose(). */
  onSignal(cleanup: () => void): void;
  dispose(): void;
}

export function watchInterruption(): InterruptionWatch {
  if (watchers++ === 0) for (const name of SIGNALS) process.on(name, onSignal);
  const own = new Set<() => void>();
  let disposed = false;
  return {
    signal: controller.signal,
    onSignal(cleanup) {
      own.add(cleanup);
      cleanups.add(cleanup);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const cleanup of own) cleanups.delete(cleanup);
      if (--watchers === 0) for (const name of SIGNALS) process.off(name, onSignal);
    },
  };
}

