/**
 * `--memory-budget` as a user's system sees it: the real CLI runs as a child process while this process reads its
 * /proc/<pid>/status every 2 ms (scripts/rss-sampler.ts). The tool's own figure is not used: it resets the kernel's
 * high-water mark while it runs. On models/tiny at 128×128 (no Python needed), with budgets set below the peak of a
 * run that keeps every block loaded, so that they bind; the paper-width model is measured by `npm run bench:memory`.
 */
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import type { CidlReport } from '../src/pipeline/ci-dl.js';
import { runSampled, type SampledRun } from '../scripts/rss-sampler.js';
import { assertBuilt, BIN, ROOT } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { tempDir } from './helpers/model-folder.js';

const MiB = 2 ** 20;
const TINY = join(ROOT, 'models', 'tiny');

let root: string;
let count = 0;

async function generate(budget: string): Promise<{ run: SampledRun; out: string }> {
  const out = join(root, `run-${count++}.mp4`);
  const args = ['generate', 'a red fox', '-o', out, '--model', TINY, '--resolution', '128x128', '--steps', '2'];
  args.push('--seed', '5', '--memory-budget', budget, '--json', '--quiet');
  const run = await runSampled(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } });
  return { run, out };
}

/** Files the run left beside its output (video, sidecar, temporary names). */
async function leftBehind(out: string): Promise<string[]> {
  const stem = basename(out, '.mp4');
  return (await readdir(dirname(out))).filter((name) => name.startsWith(stem));
}

function expectRefusal(run: SampledRun, budgetBytes: number, ...fragments: string[]): void {
  expect(run.code, run.stderr).toBe(ERROR_EXIT_CODES.MEMORY);
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: memory budget /);
  for (const fragment of fragments) expect(lines[0]).toContain(fragment);
  expect(run.peakRss).toBeLessThanOrEqual(budgetBytes);
}

describe.skipIf(process.platform !== 'linux')('the memory budget, sampled from outside', () => {
  /** Peak of a run whose budget keeps every block loaded. */
  let unbound: number;

  beforeAll(async () => {
    assertBuilt();
    root = await tempDir('sora-memory-budget-');
    const { run } = await generate('8G');
    expect(run.code, run.stderr).toBe(0);
    unbound = run.peakRss;
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  // Budgets 30 to 90 MiB below that peak. The promise is checked at each: the run ends under the budget with blocks
  // loaded again, or it is refused on one line before crossing it, leaving nothing. On this small model most of these
  // are refused (a known gap, README: memory the finished components leave behind counts against the VAE); that
  // CI-DL completes under binding budgets is tested on the bigger synthetic model in ci-dl.test.ts.
  it('never crosses a budget below the peak of an unbound run: it completes under it, reloading blocks, or refuses on one line first', async () => {
    let completed = 0;
    for (const below of [30, 50, 70, 90]) {
      const budget = Math.floor(unbound / MiB) - below;
      const { run, out } = await generate(`${budget}M`);
      expect(run.samples).toBeGreaterThan(50);
      expect(run.peakRss, `budget ${budget} MiB`).toBeLessThanOrEqual(budget * MiB);
      if (run.code !== 0) {
        expectRefusal(run, budget * MiB);
        expect(run.stderr).toMatch(/is below one block plus the working set|cannot (load|run) .* stopped before going over it/);
        expect(await leftBehind(out)).toEqual([]);
        continue;
      }
      completed++;
      const summary = JSON.parse(run.stdout) as { memory: { peakRss: number; cidl: { components: CidlReport[] } } };
      // The tool's own figure agrees with the outside one (it can only see less: it reads between the samples too).
      expect(summary.memory.peakRss).toBeLessThanOrEqual(budget * MiB);
      const vae = summary.memory.cidl.components.find((component) => component.label === 'vae')!;
      // The budget binds: some VAE parts were loaded again after being let go.
      const loads = vae.loadsPerCycle.reduce((sum, n) => sum + n, 0);
      expect(loads).toBeGreaterThan(vae.blocksPerCycle[0]!);
    }
    console.log(`memory budget test: ${completed} of 4 budgets below the unbound peak (${(unbound / MiB).toFixed(0)} MiB) completed, the others were refused`);
    recordFaults({ badInputs: 4 - completed });
  });

  it('refuses before any model work a budget below what is in use, a block and its first run, writing nothing', async () => {
    // ~70 MiB in use when the check runs (commands import their work lazily), + ~28 MiB estimated for a first STDiT
    // run at 128×128, over 82 MiB (100 MiB less the reserve). At 120M the check passes and the refusal comes later,
    // at the first load, once ORT's workers have started: refused as well, but not before any model work.
    const { run, out } = await generate('100M');
    expectRefusal(run, 100 * MiB, 'is below one block plus the working set', 'in use', 'of weights', 'estimated for this size');
    // ORT's workers start after this check; with them (~30 MiB) and a block loaded the process would pass 115 MiB.
    expect(run.peakRss).toBeLessThan(110 * MiB);
    const left = await leftBehind(out);
    expect(left).toEqual([]);
    recordFaults({ badInputs: 1, filesLeftBehind: left.length });
  });

  it('stops, before crossing it, a budget that holds every block but not the runs, writing nothing', async () => {
    const { run, out } = await generate('160M');
    expectRefusal(run, 160 * MiB, 'cannot ', 'stopped before going over it');
    expect(run.stderr).toMatch(/cannot (load|run) (t5|stdit|vae) block \S+ at this size: [\d.]+ [KMG]iB in use \+/);
    const left = await leftBehind(out);
    expect(left).toEqual([]);
    recordFaults({ badInputs: 1, filesLeftBehind: left.length });
  });
});
