/** From the sessions `runBench` ran to the rows of the report. */
import type { Model } from '../model/manifest.js';
import type { GenerateResult } from '../pipeline/generate.js';
import type { TimelineEvent } from '../pipeline/timeline.js';
import type { VideoSize } from '../pipeline/timesteps.js';
import {
  CONFIG_LABELS,
  summarize,
  TIMING_PARTS,
  type ComponentRow,
  type GemmRoof,
  type MatrixConfig,
  type MatrixRow,
  type RunnerComparison,
  type TimingPart,
} from './report.js';
import { configPreset, type SessionRun } from './run.js';
import { blockFlopsPerCall } from './block-flops.js';

/** Where a block's times come from: the first of these configurations whose sessions run it. */
const SOURCES: readonly MatrixConfig[] = ['baseline', 'tdtm', 'all', 'paper'];

/**
 * Per block, in pipeline order: load times (each session loads every block once, during the cold generation) and
 * run times per call, cold and warm; tokenize and encode come from the generation's own timings. Blocks come from
 * the baseline's sessions; blocks the baseline never runs (TDTM pairs) from the first configuration that does,
 * `tdtm` before `all` and `paper` (which also leap and budget), so every block kind gets its efficiency.
 */
export function componentRows(runs: readonly SessionRun[], model: Model, video: VideoSize, roof: GemmRoof | null): ComponentRow[] {
  const baseline = runs.filter((run) => run.config === 'baseline');
  const first = baseline[0];
  if (first === undefined) return [];
  const events = (run: SessionRun, kind: TimelineEvent['kind'], name: string, warm: boolean): number[] =>
    run.timeline.events
      .filter((e) => e.kind === kind && e.block === name && (e.startMs >= run.warmStartMs) === warm)
      .map((e) => e.endMs - e.startMs);
  const timing = (part: TimingPart, warm: boolean): number[] =>
    baseline.map((run) => (warm ? run.warm : run.cold).timingsMs[part]);
  const sessionsRunning = (name: string): SessionRun[] =>
    SOURCES.map((config) => runs.filter((run) => run.config === config)).find(
      (sessions) => sessions[0] !== undefined && events(sessions[0], 'run', name, false).length > 0,
    ) ?? [];

  const blocks = model.blocks.flatMap((block): ComponentRow[] => {
    const sessions = sessionsRunning(block.name);
    const one = sessions[0];
    if (one === undefined) return [];
    const row: TimedRow = {
      component: block.component,
      name: block.name,
      config: one.config,
      callsPerRun: events(one, 'run', block.name, false).length,
      load: summarize(sessions.flatMap((run) => events(run, 'load', block.name, false))),
      runCold: summarize(sessions.flatMap((run) => events(run, 'run', block.name, false))),
      runWarm: summarize(sessions.flatMap((run) => events(run, 'run', block.name, true))),
    };
    return [withEfficiency(row, blockFlopsPerCall(block.name, model, video, first.cold.tokens), roof)];
  });
  const step = (component: 'tokenizer' | 'encode', name: string, part: TimingPart): ComponentRow => ({
    flopsPerCall: null,
    efficiency: null,
    config: 'baseline',
    component,
    name,
    callsPerRun: 1,
    load: null,
    runCold: summarize(timing(part, false)),
    runWarm: summarize(timing(part, true)),
  });
  return [step('tokenizer', 'tokenize', 'tokenizer'), ...blocks, step('encode', 'encode', 'write')];
}

type TimedRow = Omit<ComponentRow, 'flopsPerCall' | 'efficiency'>;

/** Achieved FLOP/s of the median warm call ÷ the roof, to three decimals. */
function withEfficiency(row: TimedRow, flopsPerCall: number | null, roof: GemmRoof | null): ComponentRow {
  const seconds = row.runWarm.medianMs / 1000;
  const efficiency =
    flopsPerCall === null || roof === null || seconds <= 0 || flopsPerCall === 0
      ? null
      : Math.round((flopsPerCall / seconds / roof.flopsPerSecond) * 1000) / 1000;
  return { ...row, flopsPerCall, efficiency };
}

/** One row per configuration, in the order given; speed-ups against the baseline's medians. */
export function matrixRows(
  runs: readonly SessionRun[],
  configs: readonly MatrixConfig[],
  steps: number,
  model: Model,
  components: readonly ComponentRow[],
): MatrixRow[] {
  const stditBlocks = new Set(model.blocks.filter((block) => block.component === 'stdit').map((block) => block.name));
  const callMs = new Map(components.filter((row) => stditBlocks.has(row.name)).map((row) => [row.name, row.runWarm.medianMs]));
  const parts = (results: readonly GenerateResult[]) =>
    Object.fromEntries(TIMING_PARTS.map((part) => [part, summarize(results.map((r) => r.timingsMs[part]))])) as MatrixRow['cold'];
  const rows = configs.map((config) => {
    const mine = runs.filter((run) => run.config === config);
    const preset = configPreset(config, steps);
    return {
      config,
      label: CONFIG_LABELS[config],
      settings: {
        lplStep: preset.lpl.mode === 'fixed' ? preset.lpl.step : null,
        tdtm: preset.tdtm,
        cidl: preset.cidl,
        stepCache: preset.stepCache,
      },
      evaluations: mine[0]?.cold.sampler.evaluations ?? 0,
      cold: parts(mine.map((run) => run.cold)),
      warm: parts(mine.map((run) => run.warm)),
      outsideBlocks: {
        cold: medianShare(mine.map((run) => outsideBlockShare(run, stditBlocks, false))),
        warm: medianShare(mine.map((run) => outsideBlockShare(run, stditBlocks, true))),
      },
      blockMs: mine[0] === undefined ? null : idealBlockMs(mine[0], stditBlocks, callMs),
    };
  });
  const baseline = rows.find((row) => row.config === 'baseline');
  return rows.map(({ blockMs, ...row }) => {
    const rowSpeedup =
      baseline === undefined ? null : { cold: speedup(baseline.cold, row.cold), warm: speedup(baseline.warm, row.warm) };
    const bound = rowSpeedup === null || blockMs === null || baseline?.blockMs == null ? null : boundOf(baseline.blockMs / blockMs, rowSpeedup);
    return { ...row, speedup: rowSpeedup, bound };
  });
}

/**
 * The STDiT time of a warm generation if only block runs took time, each as long as its median warm call where it
 * was timed alone (componentRows): the calls this configuration makes, priced. Null when a block it runs has no
 * timing.
 */
function idealBlockMs(run: SessionRun, stditBlocks: ReadonlySet<string>, callMs: ReadonlyMap<string, number>): number | null {
  let total = 0;
  for (const event of run.timeline.events) {
    if (event.kind !== 'run' || !stditBlocks.has(event.block) || event.startMs < run.warmStartMs) continue;
    const ms = callMs.get(event.block);
    if (ms === undefined) return null;
    total += ms;
  }
  return total > 0 ? total : null;
}

/** The analytic speed-up (baseline's ideal block time ÷ this one's) and how much of it the measured speed-up reaches. */
function boundOf(bound: number, measured: NonNullable<MatrixRow['speedup']>): MatrixRow['bound'] {
  const share = (value: number): number => Math.round((value / bound) * 1000) / 1000;
  return {
    stdit: Math.round(bound * 1000) / 1000,
    ofBound: { cold: share(measured.cold.stdit), warm: share(measured.warm.stdit) },
  };
}

/**
 * The share of a generation's denoising time not spent running STDiT blocks (loads, waits, copies, the sampler):
 * what issue 17 calls orchestration. 0 when the generation did not denoise.
 */
function outsideBlockShare(run: SessionRun, stditBlocks: ReadonlySet<string>, warm: boolean): number {
  const denoiseMs = (warm ? run.warm : run.cold).timingsMs.denoise;
  if (denoiseMs <= 0) return 0;
  const blockMs = run.timeline.events
    .filter((e) => e.kind === 'run' && stditBlocks.has(e.block) && e.startMs >= run.warmStartMs === warm)
    .reduce((sum, e) => sum + (e.endMs - e.startMs), 0);
  return Math.max(0, 1 - blockMs / denoiseMs);
}

function medianShare(shares: readonly number[]): number {
  return shares.length === 0 ? 0 : summarize(shares).medianMs;
}

function speedup(baseline: MatrixRow['cold'], row: MatrixRow['cold']): { stdit: number; total: number } {
  const ratio = (part: TimingPart): number => Math.round((baseline[part].medianMs / row[part].medianMs) * 1000) / 1000;
  return { stdit: ratio('denoise'), total: ratio('total') };
}

/**
 * A remote bench's baseline against the local ONNX reference sessions of the same run: the warm generation's
 * denoising time per model evaluation on each side, their ratio (of the medians), and the tensor bytes each side
 * moved between the host and where blocks run per step. Null when the run had no local reference.
 */
export function runnerComparison(runs: readonly SessionRun[]): RunnerComparison | null {
  const remote = runs.filter((run) => run.place === 'benched' && run.config === 'baseline');
  const local = runs.filter((run) => run.place === 'local');
  if (remote.length === 0 || local.length === 0) return null;
  const perStep = (sessions: readonly SessionRun[]) =>
    summarize(sessions.map((run) => run.warm.timingsMs.denoise / Math.max(1, run.warm.sampler.evaluations)));
  const remoteStep = perStep(remote);
  const localStep = perStep(local);
  return {
    perStepWarm: { remote: remoteStep, local: localStep },
    ratio: Math.round((remoteStep.medianMs / localStep.medianMs) * 1000) / 1000,
    bytesPerStep: { remote: remote[0]!.warm.transfers.stdit.perStep, local: local[0]!.warm.transfers.stdit.perStep },
  };
}
