/**
 * Start-up cost (not a test), issue 17 goal 5: `ondevice-sora --help` within 120 ms, and the first block running
 * within 250 ms of the process starting, on models/shapes. Runs of a bare `node -e 0`, of `--help` through the built
 * CLI, and of `generate --trace` (one step, so each run is short; the first block does not depend on it) are
 * interleaved so that all three see the same load on a shared machine. The first block's start is read from the
 * trace: its time 0 (otherData.originMs, ms after the process started) plus the first `run` event. Medians and their
 * ratios to the bare Node start go to bench-results/startup.json; on a loaded machine the ratios are what carry over.
 *
 * With `--compare <checkout>` (another built checkout, e.g. main's in a second worktree), that build's `--help` and
 * `generate` run in the same rounds, the two builds in alternating order: a before/after that sees the same load.
 *
 *   npx tsx scripts/bench-startup.ts [--runs N] [--out FILE] [--compare DIR]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const HELP_GOAL_MS = 120;
export const FIRST_BLOCK_GOAL_MS = 250;
const PROMPT = 'a red circle moving right on a white background';

function run(args: readonly string[], cwd = ROOT): void {
  const child = spawnSync(process.execPath, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${child.status}: ${child.stderr}`);
}

function timed(args: readonly string[], cwd = ROOT): number {
  const start = performance.now();
  run(args, cwd);
  return performance.now() - start;
}

const binIn = (checkout: string): string => join(checkout, 'bin', 'ondevice-sora');

interface TraceEvent {
  readonly name: string;
  readonly ph: string;
  readonly cat?: string;
  readonly ts?: number;
}

interface FirstBlock {
  readonly block: string;
  /** Milliseconds from the process's start (Node's time origin) to the start of the first block run. */
  readonly ms: number;
}

/** One `generate --trace` on models/shapes by the build in `checkout`; the first block run as its trace records it. */
async function firstBlock(dir: string, index: number, checkout = ROOT): Promise<FirstBlock> {
  const video = join(dir, `run-${index}.mp4`);
  const shapes = join(checkout, 'models', 'shapes');
  run([binIn(checkout), '--quiet', 'generate', PROMPT, '-o', video, '--model', shapes, '--steps', '1', '--seed', '1', '--trace'], checkout);
  const sidecar = JSON.parse(await readFile(join(dir, `run-${index}.json`), 'utf8')) as {
    trace?: { traceEvents: readonly TraceEvent[]; otherData?: { originMs?: number } };
  };
  const origin = sidecar.trace?.otherData?.originMs;
  const runs = (sidecar.trace?.traceEvents ?? []).filter((event) => event.ph === 'X' && event.cat === 'run');
  if (origin === undefined || runs.length === 0) throw new Error(`${video}: the sidecar's trace has no origin or no block run`);
  const first = runs.reduce((a, b) => ((a.ts ?? 0) <= (b.ts ?? 0) ? a : b));
  return { block: first.name, ms: origin + (first.ts ?? 0) / 1000 };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const round = (value: number, digits = 1): number => Number(value.toFixed(digits));

export interface StartupReport {
  readonly runs: number;
  readonly bareNodeMs: number;
  readonly help: { readonly medianMs: number; readonly ratioToBareNode: number; readonly goalMs: number; readonly met: boolean };
  readonly firstBlock: {
    readonly model: 'models/shapes';
    readonly block: string;
    /** From the process's start to the first block run's start. */
    readonly medianMs: number;
    readonly ratioToBareNode: number;
    readonly goalMs: number;
    readonly met: boolean;
  };
  /** `--compare`: the other build's medians from the same rounds. */
  readonly compare?: {
    readonly checkout: string;
    readonly help: { readonly medianMs: number; readonly ratioToBareNode: number };
    readonly firstBlock: { readonly medianMs: number; readonly ratioToBareNode: number };
  };
  readonly loadAverage: readonly number[];
}

export async function runStartupBench(runs: number, out: string, compare?: string): Promise<StartupReport> {
  const scratch = await mkdtemp(join(tmpdir(), 'sora-bench-startup-'));
  const help: number[] = [];
  const bare: number[] = [];
  const blocks: FirstBlock[] = [];
  const other = { help: [] as number[], blocks: [] as FirstBlock[] };
  let index = 0;
  try {
    for (let i = 0; i < runs; i++) {
      bare.push(timed(['-e', '0']));
      // This build first in even rounds, the other first in odd ones.
      const order = compare === undefined ? [ROOT] : i % 2 === 0 ? [ROOT, compare] : [compare, ROOT];
      for (const checkout of order) {
        const [helps, firsts] = checkout === ROOT ? [help, blocks] : [other.help, other.blocks];
        helps.push(timed([binIn(checkout), '--help'], checkout));
        firsts.push(await firstBlock(scratch, index++, checkout));
      }
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const bareNodeMs = median(bare);
  const helpMs = median(help);
  const blockMs = median(blocks.map((block) => block.ms));
  const report: StartupReport = {
    runs,
    bareNodeMs: round(bareNodeMs),
    help: { medianMs: round(helpMs), ratioToBareNode: round(helpMs / bareNodeMs, 2), goalMs: HELP_GOAL_MS, met: helpMs <= HELP_GOAL_MS },
    firstBlock: {
      model: 'models/shapes',
      block: blocks[0]!.block,
      medianMs: round(blockMs),
      ratioToBareNode: round(blockMs / bareNodeMs, 2),
      goalMs: FIRST_BLOCK_GOAL_MS,
      met: blockMs <= FIRST_BLOCK_GOAL_MS,
    },
    ...(compare !== undefined && {
      compare: {
        checkout: compare,
        help: { medianMs: round(median(other.help)), ratioToBareNode: round(median(other.help) / bareNodeMs, 2) },
        firstBlock: {
          medianMs: round(median(other.blocks.map((block) => block.ms))),
          ratioToBareNode: round(median(other.blocks.map((block) => block.ms)) / bareNodeMs, 2),
        },
      },
    }),
    loadAverage: loadavg().map((value) => round(value, 2)),
  };
  const verdict = (met: boolean): string => (met ? 'met' : 'not met');
  console.log(
    `bare node ${report.bareNodeMs.toFixed(0)} ms; --help ${report.help.medianMs.toFixed(0)} ms ` +
      `(${report.help.ratioToBareNode.toFixed(2)}x bare node; goal ${HELP_GOAL_MS} ms: ${verdict(report.help.met)}); ` +
      `first block (${report.firstBlock.block}) ${report.firstBlock.medianMs.toFixed(0)} ms after start ` +
      `(${report.firstBlock.ratioToBareNode.toFixed(2)}x bare node; goal ${FIRST_BLOCK_GOAL_MS} ms: ${verdict(report.firstBlock.met)}); ` +
      `medians of ${runs}, load average ${report.loadAverage.join(' ')}`,
  );
  if (report.compare !== undefined) {
    const { checkout, help: otherHelp, firstBlock: otherBlock } = report.compare;
    console.log(
      `${checkout} in the same rounds: --help ${otherHelp.medianMs.toFixed(0)} ms (${otherHelp.ratioToBareNode.toFixed(2)}x), ` +
        `first block ${otherBlock.medianMs.toFixed(0)} ms (${otherBlock.ratioToBareNode.toFixed(2)}x)`,
    );
  }
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '15' }, out: { type: 'string' }, compare: { type: 'string' } },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs: must be a positive integer');
  await runStartupBench(runs, values.out ?? join(ROOT, 'bench-results', 'startup.json'), values.compare);
}
