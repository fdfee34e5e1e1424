/** `bench` through the built CLI on the shipped tiny model (2 steps, 128×128, one session per configuration). */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BenchReportSchema, MATRIX_CONFIGS } from '../src/bench/report.js';
import { ScalingReportSchema, type ScalingPoint } from '../src/bench/scaling.js';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { loadModel } from '../src/model/manifest.js';
import { PRESETS } from '../src/policies/presets.js';
import { assertBuilt, cli, expectOneLineError, ROOT } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';
import { startServe } from './helpers/runner.js';

let root: string;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-bench-');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('bench', () => {
  it('--json: a report that validates against its schema, a row per configuration and per block; files with -o', async () => {
    const out = join(root, 'out');
    const result = await cli(['bench', '--json', '--steps', '4', '--resolution', '128x128', '--repeat', '1', '--matrix', '-o', out, '--trace']);
    expect(result.code, result.stderr).toBe(0);
    const report = BenchReportSchema.parse(JSON.parse(result.stdout));
    // Piped, progress is one line per session (7 configurations × 1 repetition), with an ETA after the first.
    const progress = result.stderr.split('\n').filter((line) => line.startsWith('['));
    expect(progress).toHaveLength(MATRIX_CONFIGS.length);
    expect(progress[0]).toMatch(/^\[1\/7\] \S.*, repetition 1$/);
    expect(progress[6]).toMatch(/^\[7\/7\] .*, repetition 1 {2}ETA \d+:\d\d$/);

    expect(report.matrix.map((row) => row.config)).toEqual([...MATRIX_CONFIGS]);
    const row = (config: string) => report.matrix.find((r) => r.config === config)!;
    expect(row('baseline').speedup?.cold).toEqual({ stdit: 1, total: 1 });
    expect(row('baseline').evaluations).toBe(4);
    // LPL leaps at half the steps (step 2 of 4: 3 evaluations); TDTM merges in every step.
    expect(row('lpl').settings).toEqual({ lplStep: 2, tdtm: 0, cidl: false, stepCache: 0 });
    expect(row('lpl').evaluations).toBe(3);
    expect(row('all').settings).toEqual({ lplStep: 2, tdtm: 'all', cidl: true, stepCache: 0 });
    // paper: the preset as generate runs it, merging before the leap (steps 0–1), its last evaluation on ST blocks.
    expect(row('paper').settings).toEqual({ lplStep: 2, tdtm: 2, cidl: true, stepCache: 0 });
    expect(row('paper').evaluations).toBe(3);
    expect(row('fast').settings).toEqual({ lplStep: 2, tdtm: 0, cidl: false, stepCache: PRESETS.fast.stepCache });
    expect(report.settings.memoryBudget).toBeGreaterThan(0);
    for (const r of report.matrix) {
      expect(r.cold.total.medianMs).toBeGreaterThanOrEqual(r.cold.denoise.medianMs);
      expect(r.speedup!.warm.total).toBeCloseTo(row('baseline').warm.total.medianMs / r.warm.total.medianMs, 2);
      expect(r.outsideBlocks.warm).toBeGreaterThanOrEqual(0);
      expect(r.outsideBlocks.warm).toBeLessThan(1);
    }
    // The cold generation loads its STDiT blocks on first use, inside the denoising loop: time outside block runs.
    expect(row('baseline').outsideBlocks.cold).toBeGreaterThan(0);
    // The bound prices each configuration's block calls alike: LPL makes 3 of the baseline's 4 evaluations' calls.
    expect(row('baseline').bound!.stdit).toBe(1);
    expect(row('lpl').bound!.stdit).toBeCloseTo(4 / 3, 3);
    for (const r of report.matrix) expect(r.bound!.ofBound.warm).toBeCloseTo(r.speedup!.warm.stdit / r.bound!.stdit, 2);

    // Every block the baseline runs, in pipeline order, between tokenize and encode; STDiT blocks once per step.
    const model = await loadModel(join(ROOT, 'models', 'tiny'));
    const runBlocks = model.blocks.filter((block) => !block.name.includes('TDTM')).map((block) => block.name);
    const baselineRows = report.components.filter((c) => c.config === 'baseline');
    expect(baselineRows.map((c) => c.name)).toEqual(['tokenize', ...runBlocks, 'encode']);
    // The TDTM pairs the baseline never runs come from the tdtm configuration's sessions, with their own efficiency.
    const tdtmRows = report.components.filter((c) => c.config !== 'baseline');
    expect(tdtmRows.map((c) => [c.name, c.config])).toEqual(
      model.blocks.filter((block) => block.name.includes('TDTM')).map((block) => [block.name, 'tdtm']),
    );
    expect(tdtmRows[0]!.flopsPerCall!).toBeLessThan(report.components.find((c) => c.name === 'stdit3_ST_0')!.flopsPerCall!);
    expect(tdtmRows[0]!.efficiency!).toBeGreaterThan(0);
    const st0 = report.components.find((c) => c.name === 'stdit3_ST_0')!;
    expect(st0.callsPerRun).toBe(4);
    expect(st0.load?.n).toBe(1);
    expect(st0.runWarm.n).toBe(4);
    expect(report.components.find((c) => c.name === 'vae_spatial_part1')!.callsPerRun).toBe(5); // 17 frames / 4

    // The roof is measured in the run; every counted block has an efficiency against it, the VAE parts none.
    expect(report.roof!.shape).toEqual([4096, 4608, 1152]);
    expect(report.roof!.flopsPerSecond).toBeGreaterThan(0);
    for (const name of ['stdit3_ST_0', 't5block-layer0', 'stdit3_part1']) {
      const component = report.components.find((c) => c.name === name)!;
      expect(component.flopsPerCall, name).toBeGreaterThan(0);
      // Achieved FLOP/s of the median warm call against the roof of the same run (no bound: a loaded machine can
      // depress the roof's median below a block's).
      const achieved = component.flopsPerCall! / (component.runWarm.medianMs / 1000);
      expect(component.efficiency, name).toBeCloseTo(achieved / report.roof!.flopsPerSecond, 2);
    }
    expect(report.components.find((c) => c.name === 'vae_spatial_part1')).toMatchObject({ flopsPerCall: null, efficiency: null });
    expect(result.stderr).toContain('measuring the fp32 GEMM roof');

    expect(JSON.parse(await readFile(join(out, 'bench.json'), 'utf8'))).toEqual(report);
    const schema = JSON.parse(await readFile(join(out, 'bench.schema.json'), 'utf8')) as Record<string, any>;
    expect(schema.$schema).toMatch(/json-schema\.org/);
    expect(Object.keys(schema.properties)).toEqual(Object.keys(BenchReportSchema.shape));
    const matrixCsv = (await readFile(join(out, 'matrix.csv'), 'utf8')).trimEnd().split('\n');
    expect(matrixCsv[0]).toBe('config,state,part,evaluations,n,median_ms,min_ms,max_ms,speedup');
    expect(matrixCsv).toHaveLength(1 + MATRIX_CONFIGS.length * 2 * 6);
    const componentsCsv = (await readFile(join(out, 'components.csv'), 'utf8')).trimEnd().split('\n');
    expect(componentsCsv).toHaveLength(1 + report.components.length);
    expect(await readFile(join(out, 'matrix.svg'), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*CI-DL[\s\S]*<\/svg>\n$/);
    const png = await sharp(join(out, 'matrix.png')).metadata();
    expect(png.format).toBe('png');
    const trace = JSON.parse(await readFile(join(out, 'trace.json'), 'utf8')) as { traceEvents: { name: string; args?: { name?: string } }[] };
    const processes = trace.traceEvents.filter((e) => e.name === 'process_name').map((e) => e.args?.name);
    expect(processes).toEqual(['baseline', 'LPL', 'TDTM', 'CI-DL', 'All', 'paper', 'fast']);
    expect(report.remote).toBeNull();
  });

  it('--connect: a runner (serve on loopback) against local ONNX sessions of the same run, time and bytes per step', async () => {
    const runner = await startServe();
    try {
      const result = await cli(['bench', '--json', '--steps', '3', '--resolution', '128x128', '--repeat', '2', '--connect', runner.address]);
      expect(result.code, result.stderr).toBe(0);
      const report = BenchReportSchema.parse(JSON.parse(result.stdout));
      expect(report.backend.kind).toBe('remote');
      expect(report.roof).toBeNull();
      expect(report.backend.device).toContain(`runner at ${runner.address}`);
      expect(report.matrix.map((row) => row.config)).toEqual(['baseline']);
      const remote = report.remote!;
      expect(remote.perStepWarm.remote.n).toBe(2);
      expect(remote.perStepWarm.local.n).toBe(2);
      expect(remote.ratio).toBeCloseTo(remote.perStepWarm.remote.medianMs / remote.perStepWarm.local.medianMs, 2);
      // The same tensors cross between host and blocks either way; only the local ONNX backend moves activations
      // between its own workers (the runner's moves stay on the runner and are not counted here).
      expect(remote.bytesPerStep.remote.toHost).toBe(remote.bytesPerStep.local.toHost);
      expect(remote.bytesPerStep.remote.toRuntime).toBe(remote.bytesPerStep.local.toRuntime);
      expect(remote.bytesPerStep.remote.withinRuntime).toBe(0);
      expect(remote.bytesPerStep.local.withinRuntime).toBeGreaterThan(0);
    } finally {
      await runner.stop();
    }
  });

  it('--scaling: a point per size and frame count with FLOPs, step time, peak RSS and efficiency; JSON and chart with -o', async () => {
    const out = join(root, 'scaling');
    const result = await cli(['bench', '--scaling', '--scaling-sizes', '128,64', '--scaling-frames', '17', '--json', '-o', out]);
    expect(result.code, result.stderr).toBe(0);
    const report = ScalingReportSchema.parse(JSON.parse(result.stdout));
    // Four steps by default: the first, which allocates, is reported apart from the three warm ones.
    expect(report.steps).toBe(4);
    // Smallest first.
    expect(report.points.map((p) => [p.width, p.numFrames])).toEqual([[64, 17], [128, 17]]);
    const [small, large] = report.points as [ScalingPoint, ScalingPoint];
    expect(large.tokens).toBe(4 * small.tokens);
    expect(large.flopsPerStep!).toBeGreaterThan(small.flopsPerStep!);
    expect(report.roof!.flopsPerSecond).toBeGreaterThan(0);
    for (const point of report.points) {
      expect(point.step.n).toBe(3);
      expect(point.step.medianMs).toBeGreaterThan(0);
      expect(point.firstStepMs).toBeGreaterThan(0);
      expect(point.peakRssBytes).toBeGreaterThan(0);
      expect(point.efficiency!).toBeGreaterThan(0);
      expect(Number.isFinite(point.efficiency!)).toBe(true);
    }
    expect(JSON.parse(await readFile(join(out, 'scaling.json'), 'utf8'))).toEqual(report);
    expect(await readFile(join(out, 'scaling.svg'), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<circle [\s\S]*<\/svg>\n$/);
    expect((await sharp(join(out, 'scaling.png')).metadata()).format).toBe('png');
  });

  it('refuses bad flags before running anything', async () => {
    const { USAGE } = ERROR_EXIT_CODES;
    expectOneLineError(await cli(['bench', '--matrix', 'baseline,faster']), USAGE, '--matrix: must be a comma-separated list of baseline, lpl, tdtm, cidl, all, paper, fast');
    expectOneLineError(await cli(['bench', '--matrix', 'lpl,lpl']), USAGE, '--matrix: names a configuration twice');
    expectOneLineError(await cli(['bench', '--repeat', '0']), USAGE, '--repeat: must be an integer from 1 to 1000, got "0"');
    expectOneLineError(await cli(['bench', '--trace']), USAGE, '--trace: needs -o <folder>');
    expectOneLineError(
      await cli(['bench', '--scaling', '--scaling-sizes', '64,100']),
      USAGE,
      '--scaling-sizes: must be a comma-separated list of multiples of 16 from 16 to 2048',
    );
    expectOneLineError(await cli(['bench', '--scaling', '--scaling-frames', '17,20']), USAGE, '--scaling-frames: must be a comma-separated list of multiples of 17');
    expectOneLineError(await cli(['bench', '--scaling-frames', '17']), USAGE, '--scaling-frames: needs --scaling');
    expectOneLineError(await cli(['bench', '--scaling', '--matrix']), USAGE, '--scaling: cannot be combined with --matrix');
  });
});
