/** `bench`: per-block load and run times, cold and warm, and the paper's ablation matrix, on this machine. */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import * as z from 'zod';
import { componentRows, matrixRows, runnerComparison } from '../../bench/analyze.js';
import { componentsCsv, matrixCsv, matrixSvg, reportText } from '../../bench/render.js';
import {
  benchJsonSchema,
  BenchReportSchema,
  CONFIG_LABELS,
  MATRIX_CONFIGS,
  type BenchReport,
  type GemmRoof,
  type MatrixConfig,
} from '../../bench/report.js';
import { runBench, type SessionRun } from '../../bench/run.js';
import { displayPath } from '../../display-path.js';
import { SoraError } from '../../errors.js';
import type { ChromeTrace } from '../../pipeline/timeline.js';
import { PRESETS } from '../../policies/presets.js';
import { findFfmpeg } from '../../video/ffmpeg.js';
import { makeOutputFolder } from '../../video/folder-errors.js';
import { writeFileAtomically } from '../../video/output.js';
import { collectVersions } from '../../video/sidecar.js';
import { cliContext, type CliContext } from '../context.js';
import { integerFlag, parseFlags } from '../flags.js';
import { cidlSettings, MEMORY_FLAGS } from '../memory-flags.js';
import { BACKEND_FLAGS, jobBackendChoice } from '../backend-flags.js';
import type { CidlSettings } from '../../pipeline/ci-dl.js';
import { createCheckedJobBackend, createJobBackend, openJobBackend, type JobBackendChoice } from '../../pipeline/session.js';
import { gemmRoof, PAPER_GEMM, timeGemm } from '../../bench/gemm-roof.js';
import { runScaling, ScalingReportSchema, withScalingEfficiency, type ScalingReport } from '../../bench/scaling.js';
import { SCALING_FRAMES, SCALING_SIZES, SCALING_STEPS } from '../../bench/scaling-defaults.js';
import { scalingSvg, scalingText } from '../../bench/scaling-render.js';
import { LIMITS } from '../../model/limits.js';
import type { Logger } from '../../logging.js';
import type { Model } from '../../model/manifest.js';
import type { Backend } from '../../runtime/backend.js';
import { JOB_FLAGS, loadModelToRun, settingsFor } from './generate.js';
import { jobLines } from '../progress.js';

/** Fixed, so runs on different machines or days generate the same thing. */
const BENCH_PROMPT = 'a red ball bouncing on a wooden floor';
const MAX_REPEAT = 1000;


/** A comma-separated list of distinct integers each passing `check`. */
const listFlag = (check: (value: number) => boolean, message: string) =>
  z
    .string()
    .transform((text) => text.split(',').map((item) => item.trim()))
    .refine((items) => items.every((item) => /^\d+$/.test(item) && check(Number(item))), message)
    .transform((items) => items.map(Number))
    .refine((values) => new Set(values).size === values.length, 'names a value twice');

const MATRIX_MESSAGE = `must be a comma-separated list of ${MATRIX_CONFIGS.join(', ')}`;

// Commander gives true for a bare --matrix: every configuration.
const matrixFlag = z.preprocess(
  (value) => (value === true ? MATRIX_CONFIGS.join(',') : value),
  z
    .string()
    .transform((text) => text.split(',').map((name) => name.trim()))
    .pipe(z.array(z.enum(MATRIX_CONFIGS, MATRIX_MESSAGE)).min(1, MATRIX_MESSAGE))
    .refine((names) => new Set(names).size === names.length, 'names a configuration twice'),
);

/** What `bench` runs (commands/ defines its options). */
export async function benchAction(options: Record<string, unknown>, self: Command): Promise<void> {
  await bench(options, cliContext(self));
}

const FlagsSchema = z.object({
  model: JOB_FLAGS.model,
  steps: JOB_FLAGS.steps,
  numFrames: JOB_FLAGS.numFrames,
  resolution: JOB_FLAGS.resolution,
  ffmpeg: JOB_FLAGS.ffmpeg,
  seed: JOB_FLAGS.seed.unwrap(),
  repeat: integerFlag(1, MAX_REPEAT, `must be an integer from 1 to ${MAX_REPEAT}`),
  matrix: matrixFlag.optional(),
  memoryBudget: MEMORY_FLAGS.memoryBudget,
  output: z.string().min(1, 'must name a folder').optional(),
  trace: z.boolean().optional(),
  scaling: z.boolean().optional(),
  scalingSizes: listFlag(
    (side) => side >= 16 && side <= LIMITS.side && side % 16 === 0,
    `must be a comma-separated list of multiples of 16 from 16 to ${LIMITS.side}`,
  ).optional(),
  scalingFrames: listFlag(
    (frames) => frames >= 17 && frames <= LIMITS.numFrames && frames % 17 === 0,
    `must be a comma-separated list of multiples of 17 from 17 to ${LIMITS.numFrames}`,
  ).optional(),
  ...BACKEND_FLAGS,
});

async function bench(options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(FlagsSchema, options);
  if (flags.trace === true && flags.output === undefined) {
    throw new SoraError('USAGE', '--trace: needs -o <folder> to write trace.json into');
  }
  if (flags.scaling === true) return scaling(flags, context);
  for (const flag of ['scalingSizes', 'scalingFrames'] as const) {
    if (flags[flag] !== undefined) throw new SoraError('USAGE', `--${flag === 'scalingSizes' ? 'scaling-sizes' : 'scaling-frames'}: needs --scaling`);
  }
  const configs: MatrixConfig[] = ['baseline', ...(flags.matrix ?? []).filter((config) => config !== 'baseline')];
  const model = await loadModelToRun(flags.model, context.logger);
  // The model's defaults for everything but what the flags set (bench has no --cfg-scale, --fps, --aes).
  const settings = settingsFor(BENCH_PROMPT, { ...flags, timestepTransform: 'opensora' }, model);
  const withCidl = configs.some((config) => config === 'cidl' || config === 'all');
  const cidl = withCidl ? cidlSettings({ memoryBudget: flags.memoryBudget, ci: true, dl: true }, PRESETS.paper, model, [settings]) : undefined;
  const choice = jobBackendChoice(flags);
  const ffmpeg = await findFfmpeg(flags.ffmpeg);
  if (flags.output !== undefined) await makeOutputFolder(flags.output);

  const workDir = await mkdtemp(join(tmpdir(), 'ondevice-sora-bench-'));
  const line = jobLines();
  let runs: SessionRun[];
  let roof: GemmRoof | null;
  try {
    // Before and after the sessions, so a machine whose load changes during the run weighs on both alike.
    const before = await timeRoof(choice, model, context);
    runs = await runBench({
      model,
      settings,
      configs,
      repeat: flags.repeat,
      cidl,
      ffmpegPath: ffmpeg.path,
      workDir,
      logger: context.logger,
      openBackend: (sessionCidl) => openBenchBackend(choice, sessionCidl, model, context.logger),
      localReference: choice.backend === 'remote',
      onSession: (config, rep, index, total) => context.progress(line(index, total, `${CONFIG_LABELS[config]}, repetition ${rep}`)),
    });
    const after = await timeRoof(choice, model, context);
    roof = before === null || after === null ? null : gemmRoof(PAPER_GEMM, [...before, ...after]);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }

  const benched = runs.filter((run) => run.place === 'benched');
  const components = componentRows(benched, model, settings, roof);
  const report = BenchReportSchema.parse({
    schemaVersion: 1,
    createdAt: new Date().toISOString(),
    tool: toolVersions(),
    machine: {
      platform: process.platform,
      arch: process.arch,
      cpu: cpus()[0]?.model.trim() ?? 'unknown',
      threads: availableParallelism(),
      memoryBytes: totalmem(),
    },
    backend: { kind: choice.backend, device: benched[0]?.device ?? 'cpu' },
    model: {
      name: model.name,
      dir: model.dir,
      t5Layers: model.architecture.t5.num_layers,
      stditDepth: model.architecture.stdit.depth,
      stditHidden: model.architecture.stdit.hidden_size,
    },
    settings: {
      steps: settings.steps,
      width: settings.width,
      height: settings.height,
      numFrames: settings.numFrames,
      seed: settings.seed,
      repeat: flags.repeat,
      memoryBudget: cidl?.budget.bytes ?? null,
    },
    roof,
    components,
    matrix: matrixRows(benched, configs, settings.steps, model, components),
    remote: runnerComparison(runs),
  } satisfies BenchReport);

  const written = flags.output === undefined ? [] : await writeOutputs(flags.output, report, flags.trace === true ? runs : undefined);
  const files = written.length === 0 ? '' : `\n\nwrote ${written.map(displayPath).join(', ')}`;
  context.result(`${reportText(report)}${files}`, report);
}

/**
 * The GEMM roof on a fresh backend of the kind the blocks run on, with the same thread settings; null when they do
 * not run on local ONNX Runtime (a roof of this machine says nothing about a runner or the Neural Engine).
 */
async function timeRoof(choice: JobBackendChoice, model: Model, context: CliContext): Promise<number[] | null> {
  if (choice.backend !== 'onnx') return null;
  context.progress('measuring the fp32 GEMM roof');
  const backend = createJobBackend({ backend: 'onnx' }, undefined, model, context.logger);
  try {
    return await timeGemm(backend, PAPER_GEMM);
  } finally {
    await backend.close();
  }
}

type Flags = z.infer<typeof FlagsSchema>;

/** `--scaling`: the grid of sizes × frame counts on local ONNX Runtime, the roof measured before and after. */
async function scaling(flags: Flags, context: CliContext): Promise<void> {
  const conflicts = [
    ['matrix', flags.matrix],
    ['resolution', flags.resolution],
    ['num-frames', flags.numFrames],
    ['trace', flags.trace],
    ['memory-budget', flags.memoryBudget],
  ] as const;
  const conflict = conflicts.find(([, value]) => value !== undefined);
  if (conflict !== undefined) throw new SoraError('USAGE', `--scaling: cannot be combined with --${conflict[0]}`);
  const choice = jobBackendChoice(flags);
  if (choice.backend !== 'onnx') throw new SoraError('USAGE', '--scaling: runs on local ONNX Runtime only (--backend onnx)');
  const model = await loadModelToRun(flags.model, context.logger);
  const settings = settingsFor(BENCH_PROMPT, { ...flags, steps: flags.steps ?? SCALING_STEPS, timestepTransform: 'opensora' }, model);
  const ffmpeg = await findFfmpeg(flags.ffmpeg);
  if (flags.output !== undefined) await makeOutputFolder(flags.output);
  const workDir = await mkdtemp(join(tmpdir(), 'ondevice-sora-bench-scaling-'));
  const line = jobLines();
  let report: ScalingReport;
  try {
    const before = await timeRoof(choice, model, context);
    const plan = { model, settings, ffmpegPath: ffmpeg.path, workDir, logger: context.logger };
    const grid = { resolutions: flags.scalingSizes ?? SCALING_SIZES, frameCounts: flags.scalingFrames ?? SCALING_FRAMES };
    const points = await runScaling({
      ...plan,
      ...grid,
      onPoint: (point, index, total) => context.progress(line(index, total, `${point.width}x${point.height}, ${point.numFrames} frames`)),
    });
    const after = await timeRoof(choice, model, context);
    const roof = before === null || after === null ? null : gemmRoof(PAPER_GEMM, [...before, ...after]);
    report = ScalingReportSchema.parse({
      schemaVersion: 1,
      createdAt: new Date().toISOString(),
      model: {
        name: model.name,
        dir: model.dir,
        stditDepth: model.architecture.stdit.depth,
        stditHidden: model.architecture.stdit.hidden_size,
      },
      steps: settings.steps,
      roof,
      points: points.map((point) => withScalingEfficiency(point, roof)),
    } satisfies ScalingReport);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  const written = flags.output === undefined ? [] : await writeScalingOutputs(flags.output, report);
  const files = written.length === 0 ? '' : `\n\nwrote ${written.map(displayPath).join(', ')}`;
  context.result(`${scalingText(report)}${files}`, report);
}

async function writeScalingOutputs(folder: string, report: ScalingReport): Promise<string[]> {
  const svg = scalingSvg(report);
  const files: [string, string | Uint8Array][] = [
    ['scaling.json', `${JSON.stringify(report, null, 2)}\n`],
    ['scaling.svg', svg],
    ['scaling.png', await (await import('sharp')).default(Buffer.from(svg)).png().toBuffer()],
  ];
  return writeFiles(folder, files);
}

/**
 * A fresh backend per session. A runner is connected anew, but keeps its blocks loaded between clients: only its
 * first session loads them cold, which is why the remote comparison uses the warm generations.
 */
async function openBenchBackend(choice: JobBackendChoice, cidl: CidlSettings | undefined, model: Model, logger: Logger): Promise<Backend> {
  if (choice.backend !== 'remote') return createCheckedJobBackend(choice, cidl, model, logger);
  // The budget was resolved against this machine's memory; a runner on another one is budgeted by its own limits.
  const { backend } = await openJobBackend(choice, { requested: cidl !== undefined, settings: () => cidl }, model, logger);
  return backend;
}

function toolVersions(): BenchReport['tool'] {
  const versions = collectVersions(null);
  return { version: versions.tool, node: versions.node, onnxruntime: versions.onnxruntime };
}

/** Each file whole or not at all; returns their paths. */
async function writeFiles(folder: string, files: readonly [string, string | Uint8Array][]): Promise<string[]> {
  const paths: string[] = [];
  for (const [name, data] of files) {
    const path = resolve(folder, name);
    await writeFileAtomically(path, data);
    paths.push(path);
  }
  return paths;
}

/** bench.json and the files beside it. */
async function writeOutputs(folder: string, report: BenchReport, traced: readonly SessionRun[] | undefined): Promise<string[]> {
  const svg = matrixSvg(report);
  const files: [string, string | Uint8Array][] = [
    ['bench.json', `${JSON.stringify(report, null, 2)}\n`],
    ['bench.schema.json', `${JSON.stringify(benchJsonSchema(), null, 2)}\n`],
    ['components.csv', componentsCsv(report.components)],
    ['matrix.csv', matrixCsv(report.matrix)],
    ['matrix.svg', svg],
    ['matrix.png', await (await import('sharp')).default(Buffer.from(svg)).png().toBuffer()],
    ...(traced === undefined ? [] : [['trace.json', JSON.stringify(mergedTrace(traced))] as [string, string]]),
  ];
  return writeFiles(folder, files);
}

/**
 * The first session of each configuration as one Chrome process each, named after it: side by side in the viewer,
 * each starting at 0, so the configurations compare at a glance.
 */
function mergedTrace(runs: readonly SessionRun[]): ChromeTrace {
  const firsts = runs.filter((run) => run.rep === 1);
  const traceEvents = firsts.flatMap((run, i) => {
    const pid = i + 1;
    const events = run.timeline.toChromeTrace().traceEvents.map((event) => ({ ...event, pid }));
    return [{ name: 'process_name', ph: 'M' as const, pid, args: { name: CONFIG_LABELS[run.config] } }, ...events];
  });
  return { traceEvents, displayTimeUnit: 'ms' };
}
