/**
 * Start-up cost (not a test): `ondevice-sora --help` through the built CLI against a bare `node -e ''`, interleaved so
 * that both see the same load on a shared machine, with the medians and their ratio in bench-results/startup.json.
 * Issue 17's goal is `--help` within 120 ms where a bare Node starts in ~60 ms.
 *
 *   npx tsx scripts/bench-startup.ts [--runs N] [--out FILE]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'ondevice-sora');
const GOAL_MS = 120;

function timed(args: readonly string[]): number {
  const start = performance.now();
  const run = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'ignore' });
  if (run.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${run.status}`);
  return performance.now() - start;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export interface StartupReport {
  readonly runs: number;
  readonly helpMs: number;
  readonly bareNodeMs: number;
  readonly ratio: number;
  readonly goalMs: number;
}

export async function runStartupBench(runs: number, out: string): Promise<StartupReport> {
  const help: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < runs; i++) {
    bare.push(timed(['-e', '']));
    help.push(timed([BIN, '--help']));
  }
  const report = { runs, helpMs: median(help), bareNodeMs: median(bare), ratio: median(help) / median(bare), goalMs: GOAL_MS };
  console.log(
    `--help ${report.helpMs.toFixed(0)} ms, bare node ${report.bareNodeMs.toFixed(0)} ms (${report.ratio.toFixed(1)}x; ` +
      `medians of ${runs}); goal ${GOAL_MS} ms: ${report.helpMs <= GOAL_MS ? 'met' : 'not met'}`,
  );
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, out: { type: 'string' } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs: must be a positive integer');
  await runStartupBench(runs, values.out ?? join(ROOT, 'bench-results', 'startup.json'));
}
