/**
 * Counts for the fault-injection summary that `npm test` prints at the end (test/fault-ledger.setup.ts).
 * Tests run in separate processes, so each appends its counts as JSON lines to a file of its own in the folder the
 * global setup made; the teardown adds them up. A test still asserts its own outcome: the ledger only reports.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FaultCounts {
  /** Malformed flags, files, manifests or protocol frames handed to the real tool. */
  readonly badInputs?: number;
  /** Faults caused on purpose: signals, killed children, full disks, truncated downloads, fake programs. */
  readonly faultsInjected?: number;
  /** Real processes run at the same time against one output or resource. */
  readonly concurrentRuns?: number;
  /** Files found after a failed or interrupted run that the tool should have removed (a test asserts 0). */
  readonly filesLeftBehind?: number;
  /** Files that existed before the run and were changed or removed by it (a test asserts 0). */
  readonly userFilesLost?: number;
}

export const LEDGER_ENV = 'ONDEVICE_SORA_FAULT_LEDGER';

export function recordFaults(counts: FaultCounts): void {
  const dir = process.env[LEDGER_ENV];
  if (dir === undefined) return;
  appendFileSync(join(dir, `${process.pid}.jsonl`), `${JSON.stringify(counts)}\n`);
}
