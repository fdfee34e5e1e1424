/**
 * CI-DL end to end: `generate` on a synthetic model whose STDiT (8 blocks of ~19 MB) is bigger than the tiny
 * model's, each run in its own process so that the peak RSS in its sidecar is its own. The budgets are set below the
 * peak of a run that keeps every block resident, by two and by four blocks, so they bind; the peak must stay at or
 * under them (test/memory-budget.test.ts checks the same from outside the process).
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frameDifference, readPngFrames } from '../scripts/frame-difference.js';
import { cidlSettings } from '../src/cli/memory-flags.js';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { loadModel } from '../src/model/manifest.js';
import type { CidlReport } from '../src/pipeline/ci-dl.js';
import { memoryBudgetFlag } from '../src/pipeline/memory-budget.js';
import type { ChromeTrace } from '../src/pipeline/timeline.js';
import { PRESETS } from '../src/policies/presets.js';
import { assertBuilt, cli, expectOneLineError, ROOT } from './helpers/cli.js';
import { expectSoraError } from './helpers/expect-error.js';
import { tempDir } from './helpers/model-folder.js';
import { syntheticModel, syntheticModelProblem } from './helpers/synthetic-model.js';

const problem = await syntheticModelProblem();
const STEPS = 5;

interface Summary {
  readonly memory: { readonly peakRss: number; readonly cidl: { readonly components: readonly CidlReport[] } | null };
  readonly trace?: ChromeTrace;
}

interface Run {
  readonly summary: Summary;
  /** The PNG files' bytes, in name order. */
  readonly frames: Buffer[];
  readonly dir: string;
}

let root: string;
let model: string;
let blockBytes: number;
let count = 0;

async function generate(...flags: string[]): Promise<Run> {
  const out = join(root, `run-${count++}`);
  const args = ['generate', 'a red fox', '-o', out, '--model', model, '--json', '--quiet'];
  // 64×64 is below the sizes the tiny-derived manifest declares: small on purpose, for speed.
  args.push('--seed', '3', '--steps', String(STEPS), '--resolution', '64x64', '--num-frames', '17', '--allow-any-size', ...flags);
  const result = await cli(args);
  expect(result.code, result.stderr).toBe(0);
  const files = (await readdir(out)).sort();
  return { summary: JSON.parse(result.stdout) as Summary, frames: await Promise.all(files.map((f) => readFile(join(out, f)))), dir: out };
}

const stdit = (run: Run): CidlReport => {
  const report = run.summary.memory.cidl?.components.find((component) => component.label === 'stdit');
  if (report === undefined) throw new Error('no CI-DL report for the STDiT');
  return report;
};

describe('which runs use CI-DL, and under which budget', () => {
  it('reads sizes as binary units; a negative one is a margin below the available memory', () => {
    expect(memoryBudgetFlag.parse('3.3G')).toEqual({ kind: 'absolute', bytes: Math.round(3.3 * 2 ** 30) });
    expect(memoryBudgetFlag.parse('800M')).toEqual({ kind: 'absolute', bytes: 800 * 2 ** 20 });
    expect(memoryBudgetFlag.parse('1.5GiB')).toEqual({ kind: 'absolute', bytes: 1.5 * 2 ** 30 });
    expect(memoryBudgetFlag.parse('123456')).toEqual({ kind: 'absolute', bytes: 123456 });
    expect(memoryBudgetFlag.parse('-1G')).toEqual({ kind: 'margin', bytes: 2 ** 30 });
    for (const bad of ['', 'G', '3.3X', '1e9', '0', '--1G']) expect(memoryBudgetFlag.safeParse(bad).success).toBe(false);
  });

  it('--preset paper or a budget turns it on, with both techniques unless switched off', async () => {
    const tiny = await loadModel(join(ROOT, 'models', 'tiny'));
    const on = { ci: true, dl: true };
    expect(cidlSettings(on, PRESETS.baseline, tiny)).toBeUndefined();
    const paper = cidlSettings(on, PRESETS.paper, tiny)!;
    expect(paper).toMatchObject({ concurrent: true, dynamicLoading: true });
    expect(paper.budget.source).toMatch(/^default: .* in use \+ 80% of .* available$/);
    const budgeted = cidlSettings({ ci: false, dl: true, memoryBudget: { kind: 'absolute', bytes: 2 ** 32 } }, PRESETS.baseline, tiny);
    expect(budgeted).toEqual({ budget: { bytes: 2 ** 32, source: '--memory-budget 4.0 GiB' }, concurrent: false, dynamicLoading: true });
    const ablation = Promise.resolve().then(() => cidlSettings({ ci: true, dl: false }, PRESETS.baseline, tiny));
    await expectSoraError(ablation, 'USAGE', '--no-dl: only applies with CI-DL');
  });
});

describe.skipIf(problem !== null)('CI-DL on a synthetic model bigger than the tiny one', () => {
  // One run per setting, shared by the tests that look at it.
  const runs = new Map<string, Promise<Run>>();
  const once = (key: string, ...flags: string[]): Promise<Run> => {
    if (!runs.has(key)) runs.set(key, generate(...flags));
    return runs.get(key)!;
  };
  const everythingResident = () => once('resident', '--memory-budget', '20G');
  const budgetBelow = async (blocks: number): Promise<number> =>
    (await everythingResident()).summary.memory.peakRss - blocks * blockBytes;
  const budgeted = async (blocks: number, ...flags: string[]) => {
    const budget = await budgetBelow(blocks);
    return { budget, run: await once(`budget-${blocks}`, '--memory-budget', String(budget), '--trace', ...flags) };
  };

  beforeAll(async () => {
    assertBuilt();
    root = await tempDir('sora-ci-dl-');
    model = await syntheticModel();
    const manifest = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8')) as {
      blocks: { name: string; weightBytes: number }[];
    };
    blockBytes = manifest.blocks.find((block) => block.name === 'stdit3_ST_0')!.weightBytes;
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('refuses a budget below one block plus what is in use, before any work, with the numbers', async () => {
    const out = join(root, 'refused');
    const result = await cli(['generate', 'a red fox', '-o', out, '--model', model, '--memory-budget', '40M']);
    expectOneLineError(result, ERROR_EXIT_CODES.MEMORY, 'memory budget 40.0 MiB', 'in use', 'stdit3_ST_0', 'MiB of weights');
    await expect(readdir(out)).rejects.toThrow();
  });

  it.each([2, 4])('keeps the peak RSS within a budget %i blocks below the all-resident peak', async (blocks) => {
    const { budget, run } = await budgeted(blocks);
    expect(run.summary.memory.peakRss).toBeLessThanOrEqual(budget);
    const report = stdit(run);
    expect(report.resident.length).toBeLessThan(report.blocksPerCycle[0]!);
  });

  it('loads blocks − K blocks per step once the plan has settled', async () => {
    const { run } = await budgeted(2);
    const report = stdit(run);
    const { blocksPerCycle, loadsPerCycle, residentPerCycle } = report;
    expect(loadsPerCycle[0]).toBe(blocksPerCycle[0]); // step 0 loads every block
    // A step whose resident set did not change since the step before loads exactly the others.
    const settled = residentPerCycle.flatMap((k, step) => (step > 0 && residentPerCycle[step - 1] === k ? [step] : []));
    expect(settled.length).toBeGreaterThan(0);
    for (const step of settled) expect(loadsPerCycle[step]).toBe(blocksPerCycle[step]! - residentPerCycle[step]!);
    // The resident blocks are the first K of a step.
    expect(report.resident.length).toBeGreaterThan(0);
    const firstK = ['stdit3_part1', ...Array.from({ length: report.resident.length - 1 }, (_, i) => `stdit3_ST_${i}`)];
    expect(report.resident).toEqual(firstK);
    const resident = stdit(await everythingResident());
    expect(resident.resident.length).toBe(resident.blocksPerCycle[0]);
    expect(resident.loadsPerCycle.slice(1)).toEqual(Array(STEPS - 1).fill(0));
  });

  it('loads block i+1 while block i runs', async () => {
    const { run } = await budgeted(2);
    const report = stdit(run);
    expect(report.concurrent).toBe(true);
    const spans = run.summary.trace!.traceEvents.filter((e) => e.ph === 'X' && e.name.startsWith('stdit3_'));
    const runs = spans.filter((e) => e.cat === 'run');
    const stepStarts = runs.filter((e) => e.name === 'stdit3_part1').map((e) => e.ts!);
    const stepOf = (ts: number): number => stepStarts.filter((start) => start <= ts).length - 1;
    // In a step that ends with the resident set it started with, every streamed block was loaded ahead (in a step
    // that unloads resident blocks, a prefetch may wait for one whose worker is still running).
    const settled = (step: number): boolean => step > 0 && report.residentPerCycle[step] === report.residentPerCycle[step - 1];
    const end = (event: (typeof spans)[number]): number => event.ts! + event.dur!;
    let checked = 0;
    let ahead = 0;
    for (const load of spans.filter((e) => e.cat === 'load' && /^stdit3_ST_[1-9]/.test(e.name))) {
      const index = Number(load.name.slice('stdit3_ST_'.length));
      // The run this load was for, and the run of the block before it in the same step.
      const own = runs.find((r) => r.name === load.name && r.ts! >= end(load))!;
      if (!settled(stepOf(own.ts!))) continue;
      const before = runs.filter((r) => r.name === `stdit3_ST_${index - 1}` && r.ts! < own.ts!).at(-1)!;
      checked++;
      if (load.ts! < end(before)) ahead++;
    }
    expect(checked).toBeGreaterThan(0);
    // Most, not all: on a busy 2-core machine a prefetch was once seen to start 25 ms after the run it should
    // overlap had ended (1 run in 40). A loader that waits for each run to finish would overlap none.
    expect(ahead / checked).toBeGreaterThanOrEqual(0.75);
  });

  it('writes bit-identical frames with CI-DL on and off under a budget that holds the model', async () => {
    const off = await once('baseline');
    expect(off.summary.memory.cidl).toBeNull();
    const on = await everythingResident();
    expect(on.frames.length).toBe(17);
    expect(on.frames).toEqual(off.frames);
  });

  it('writes frames within one level of the unbudgeted ones under budgets that bind (weights mapped, unpacked)', async () => {
    const off = await once('baseline');
    for (const on of [(await budgeted(2)).run, (await budgeted(4)).run]) {
      const difference = frameDifference(await readPngFrames(off.dir), await readPngFrames(on.dir));
      expect(difference.frames).toBe(17);
      expect(difference.maxAbs).toBeLessThanOrEqual(1);
      expect(difference.differing).toBeLessThan(0.001);
    }
  });

  it('under a budget that binds, counts mapped weights with the block that holds them, not in its run\'s working set', async () => {
    const { run } = await budgeted(2);
    const report = stdit(run);
    expect(report.weightsMapped).toBe(true);
    expect(stdit(await everythingResident()).weightsMapped).toBe(false);
    // Mapped, a block's weights come in with its first run; counted there, W would be at least a block's weights.
    expect(report.workingSet).toBeGreaterThan(0);
    expect(report.workingSet).toBeLessThan(blockBytes);
  });

  it('--no-ci --no-dl loads every block at every step, one at a time, with the same frames', async () => {
    const run = await once('ablation', '--memory-budget', '20G', '--no-ci', '--no-dl', '--trace');
    const report = stdit(run);
    expect(report).toMatchObject({ concurrent: false, dynamicLoading: false, resident: [] });
    expect(report.loadsPerCycle).toEqual(Array(STEPS).fill(report.blocksPerCycle[0]));
    const events = run.summary.trace!.traceEvents.filter((e) => e.ph === 'X' && (e.cat === 'run' || e.cat === 'load'));
    const sorted = events.sort((a, b) => a.ts! - b.ts!);
    for (const [i, event] of sorted.entries()) {
      if (i > 0) expect(event.ts!).toBeGreaterThanOrEqual(sorted[i - 1]!.ts! + sorted[i - 1]!.dur! - 1);
    }
    expect(run.frames).toEqual((await once('baseline')).frames);
  });

  it('refuses the ablation flags without CI-DL', async () => {
    const result = await cli(['generate', 'a red fox', '-o', join(root, 'x'), '--model', model, '--no-ci']);
    expectOneLineError(result, ERROR_EXIT_CODES.USAGE, '--no-ci: only applies with CI-DL');
  });
});

if (problem !== null) {
  describe('CI-DL', () => {
    it.skip(`skipped: ${problem}`, () => {});
  });
}

