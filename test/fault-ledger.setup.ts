/** vitest global setup: a folder for the fault ledger, and its summary line once every test file has run. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FaultCounts, LEDGER_ENV } from './helpers/fault-ledger.js';

const KEYS = ['badInputs', 'faultsInjected', 'concurrentRuns', 'filesLeftBehind', 'userFilesLost'] as const;
const LABELS: Record<(typeof KEYS)[number], string> = {
  badInputs: 'bad inputs tried',
  faultsInjected: 'faults injected',
  concurrentRuns: 'concurrent runs',
  filesLeftBehind: 'files left behind',
  userFilesLost: 'user files lost',
};

export function totals(dir: string): Record<(typeof KEYS)[number], number> {
  const sum = Object.fromEntries(KEYS.map((key) => [key, 0])) as Record<(typeof KEYS)[number], number>;
  for (const file of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      if (line === '') continue;
      const counts = JSON.parse(line) as FaultCounts;
      for (const key of KEYS) sum[key] += counts[key] ?? 0;
    }
  }
  return sum;
}

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'sora-fault-ledger-'));
  process.env[LEDGER_ENV] = dir;
  return () => {
    const sum = totals(dir);
    rmSync(dir, { recursive: true, force: true });
    const parts = KEYS.map((key) => `${LABELS[key]} ${sum[key]}`);
    console.log(`\nfault injection: ${parts.join(', ')}`);
  };
}
