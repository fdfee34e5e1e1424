/**
 * Issue 17's speed goals read back from what `npm run bench` wrote (not a test): one row per goal with its bound,
 * what was measured and whether it is met, printed as a table and written to bench-results/goals.json. A goal whose
 * report is missing (no Python for the synthetic model, a stage that failed) reads "not measured", never "met".
 *
 *   npx tsx scripts/bench-goals.ts [--dir bench-results]
 *
 * The reports it reads, all under the results folder (scripts/bench.ts writes them):
 * - paper-width-256/bench.json: `bench --matrix tdtm` on the paper-width synthetic model at 256², 68 frames (goal 1);
 * - synthetic-opensora-1.2/bench.json and shapes/bench.json: the ablation matrix (goals 2, 4, 7);
 * - shapes-cidl/bench.json: `--matrix baseline,cidl` on models/shapes, 9 sessions (goal 3's second half: a 2 % bound
 *   that 3 sessions cannot resolve on this small model);
 * - cidl.json (scripts/bench-cidl.ts), memory.json (scripts/bench-memory.ts): goal 3;
 * - startup.json (goal 5), compression.json (goal 6), eval-fast.json (`eval --configs baseline,fast`, goal 7);
 * - scaling-synthetic-opensora-1.2/scaling.json: goal 8.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as z from 'zod';
import { BenchReportSchema, type BenchReport, type MatrixConfig, type MatrixRow } from '../src/bench/report.js';
import { ScalingReportSchema, type ScalingReport } from '../src/bench/scaling.js';
import { errorMessage } from '../src/errors.js';
import { EvalReportSchema, type EvalReport } from '../src/eval/report.js';
import { FIRST_BLOCK_GOAL_MS, HELP_GOAL_MS } from './bench-startup.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const GOAL_SOURCES = {
  paperWidth256: 'paper-width-256/bench.json',
  paperWidthMatrix: 'synthetic-opensora-1.2/bench.json',
  shapesMatrix: 'shapes/bench.json',
  shapesCidl: 'shapes-cidl/bench.json',
  cidl: 'cidl.json',
  memory: 'memory.json',
  startup: 'startup.json',
  compression: 'compression.json',
  evalFast: 'eval-fast.json',
  scaling: 'scaling-synthetic-opensora-1.2/scaling.json',
} as const;

const CidlReportSchema = z.object({
  settings: z.object({ 'ci-dl': z.object({ stepMs: z.object({ minMs: z.number().positive() }), boundMs: z.number().positive() }) }),
});
const MemoryReportSchema = z.object({
  cases: z.array(z.object({ name: z.string(), runs: z.array(z.object({ budget: z.string().nullable(), withinBudget: z.boolean().nullable() })) })),
});
const StartupReportSchema = z.object({
  bareNodeMs: z.number().positive(),
  help: z.object({ medianMs: z.number().positive() }),
  firstBlock: z.object({ medianMs: z.number().positive() }),
});
const CompressionReportSchema = z.object({
  cases: z.array(
    z.object({
      name: z.string(),
      settings: z.array(z.object({ setting: z.string(), bytes: z.number().positive(), quality: z.object({ overall: z.number() }).optional() })),
    }),
  ),
});

export interface GoalInputs {
  readonly paperWidth256?: BenchReport;
  readonly paperWidthMatrix?: BenchReport;
  readonly shapesMatrix?: BenchReport;
  readonly shapesCidl?: BenchReport;
  readonly cidl?: z.infer<typeof CidlReportSchema>;
  readonly memory?: z.infer<typeof MemoryReportSchema>;
  readonly startup?: z.infer<typeof StartupReportSchema>;
  readonly compression?: z.infer<typeof CompressionReportSchema>;
  readonly evalFast?: EvalReport;
  readonly scaling?: ScalingReport;
}

const SCHEMAS: { readonly [K in keyof GoalInputs]-?: z.ZodType<NonNullable<GoalInputs[K]>> } = {
  paperWidth256: BenchReportSchema,
  paperWidthMatrix: BenchReportSchema,
  shapesMatrix: BenchReportSchema,
  shapesCidl: BenchReportSchema,
  cidl: CidlReportSchema,
  memory: MemoryReportSchema,
  startup: StartupReportSchema,
  compression: CompressionReportSchema,
  evalFast: EvalReportSchema,
  scaling: ScalingReportSchema,
};

export interface GoalRow {
  readonly goal: string;
  readonly what: string;
  readonly bound: string;
  readonly measured: string;
  /** null: its report is missing, so the goal was not measured in this run. */
  readonly met: boolean | null;
  readonly source: string;
}

/**
 * A report's text, or undefined when there is no such file (its stage did not run) or, with `since`, when it was
 * written before then: a report an earlier run left must not stand for a stage that this run skipped.
 */
async function reportText(file: string, since?: number): Promise<string | undefined> {
  try {
    if (since !== undefined && (await stat(file)).mtimeMs < since) return undefined;
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Each report that is there, checked against its schema; a file that is there but does not parse is an error. */
export async function readGoalInputs(dir: string, since?: number): Promise<GoalInputs> {
  const inputs: Record<string, unknown> = {};
  for (const [key, path] of Object.entries(GOAL_SOURCES) as [keyof GoalInputs, string][]) {
    const file = join(dir, path);
    const text = await reportText(file, since);
    if (text === undefined) continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new Error(`${file}: not JSON: ${errorMessage(error)}`);
    }
    const parsed = SCHEMAS[key].safeParse(json);
    if (!parsed.success) throw new Error(`${file}: not a report of its kind: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    inputs[key] = parsed.data;
  }
  return inputs as GoalInputs;
}

const two = (value: number): string => value.toFixed(2);
const percent = (share: number): string => `${(share * 100).toFixed(1)} %`;

/** The issue's bounds, each written once: the verdicts test them and the table prints them. */
const BOUNDS = {
  blockEfficiency: 0.9,
  paperOfBound: 0.97,
  cidlStepOverBound: 1.1,
  cidlCost: 0.02,
  fastSpeedup: 3,
  fastQuality: 0.95,
  scalingEfficiency: 0.8,
} as const;

function notMeasured(goal: string, what: string, bound: string, source: string): GoalRow {
  return { goal, what, bound, measured: 'not measured', met: null, source };
}

function matrixRow(report: BenchReport, config: MatrixConfig): MatrixRow | undefined {
  return report.matrix.find((row) => row.config === config);
}

function blockEfficiency(report: BenchReport | undefined): GoalRow {
  const what = 'ST and TDTM block pairs at paper width, 256², 68 frames (warm call ÷ median GEMM roof)';
  const source = GOAL_SOURCES.paperWidth256;
  const bound = `≥ ${two(BOUNDS.blockEfficiency)}`;
  const blocks = (report?.components ?? []).filter((row) => /^stdit3_(ST|TDTM)_\d+$/.test(row.name) && row.efficiency !== null);
  if (report?.roof == null || blocks.length === 0) return notMeasured('1', what, bound, source);
  const list = blocks.map((row) => `${row.name.replace('stdit3_', '')} ${two(row.efficiency!)}`).join(', ');
  const lowest = Math.min(...blocks.map((row) => row.efficiency!));
  const roof = `roof ${(report.roof.flopsPerSecond / 1e9).toFixed(0)} GFLOP/s`;
  return { goal: '1', what, bound, measured: `${list} (${roof})`, met: lowest >= BOUNDS.blockEfficiency, source };
}

function paperOfBound(report: BenchReport | undefined): GoalRow {
  const what = '`--preset paper` STDiT speed-up ÷ its analytic bound, paper width (cold / warm)';
  const bound = `≥ ${two(BOUNDS.paperOfBound)}`;
  const paper = report === undefined ? undefined : matrixRow(report, 'paper');
  if (paper?.bound == null) return notMeasured('2', what, bound, GOAL_SOURCES.paperWidthMatrix);
  const { cold, warm } = paper.bound.ofBound;
  const measured = `${two(cold)} / ${two(warm)} (bound ${two(paper.bound.stdit)}×)`;
  const met = cold >= BOUNDS.paperOfBound && warm >= BOUNDS.paperOfBound;
  return { goal: '2', what, bound, measured, met, source: GOAL_SOURCES.paperWidthMatrix };
}

function paperVersusLpl(reports: readonly [string, BenchReport | undefined][]): GoalRow {
  const what = '`--preset paper` never slower than its LPL part alone (STDiT speed-up, cold / warm)';
  const parts: string[] = [];
  let met: boolean | null = true;
  for (const [name, report] of reports) {
    const paper = report === undefined ? undefined : matrixRow(report, 'paper')?.speedup;
    const lpl = report === undefined ? undefined : matrixRow(report, 'lpl')?.speedup;
    if (paper == null || lpl == null) {
      parts.push(`${name}: not measured`);
      met = null;
      continue;
    }
    parts.push(`${name}: paper ${two(paper.cold.stdit)}× / ${two(paper.warm.stdit)}×, LPL ${two(lpl.cold.stdit)}× / ${two(lpl.warm.stdit)}×`);
    if (met !== null) met = paper.cold.stdit >= lpl.cold.stdit && paper.warm.stdit >= lpl.warm.stdit;
  }
  const source = `${GOAL_SOURCES.paperWidthMatrix}, ${GOAL_SOURCES.shapesMatrix}`;
  return { goal: '2', what, bound: 'paper ≥ LPL', measured: parts.join('; '), met, source };
}

function cidlOverlap(report: GoalInputs['cidl']): GoalRow {
  const what = 'CI-DL step time ÷ overlap bound max(Σ run, Σ load), cold loads (bench:cidl, paper width, 480M budget)';
  const bound = `≤ ${two(BOUNDS.cidlStepOverBound)}`;
  if (report === undefined) return notMeasured('3', what, bound, GOAL_SOURCES.cidl);
  const setting = report.settings['ci-dl'];
  const ratio = setting.stepMs.minMs / setting.boundMs;
  const measured = `${two(ratio)} (step ${(setting.stepMs.minMs / 1000).toFixed(2)} s, bound ${(setting.boundMs / 1000).toFixed(2)} s)`;
  return { goal: '3', what, bound, measured, met: ratio <= BOUNDS.cidlStepOverBound, source: GOAL_SOURCES.cidl };
}

function cidlFitting(report: BenchReport | undefined): GoalRow {
  const sessions = report === undefined ? '' : `, ${report.settings.repeat} sessions`;
  const what = `CI-DL on a model that fits its budget: STDiT time over no CI-DL, models/shapes${sessions} (cold / warm)`;
  const bound = `≤ ${BOUNDS.cidlCost * 100} %`;
  const cidl = report === undefined ? undefined : matrixRow(report, 'cidl')?.speedup;
  if (cidl == null) return notMeasured('3', what, bound, GOAL_SOURCES.shapesCidl);
  const cost = (speedup: number): number => 1 / speedup - 1;
  const [cold, warm] = [cost(cidl.cold.stdit), cost(cidl.warm.stdit)];
  const measured = `${percent(cold)} / ${percent(warm)}`;
  return { goal: '3', what, bound, measured, met: cold <= BOUNDS.cidlCost && warm <= BOUNDS.cidlCost, source: GOAL_SOURCES.shapesCidl };
}

function budgetKept(report: GoalInputs['memory']): GoalRow {
  const what = 'peak RSS sampled from outside within each accepted --memory-budget';
  if (report === undefined) return notMeasured('3', what, 'every run', GOAL_SOURCES.memory);
  const budgeted = report.cases.flatMap((testCase) => testCase.runs.filter((run) => run.withinBudget !== null));
  const over = budgeted.filter((run) => run.withinBudget === false).length;
  const measured = `${budgeted.length - over} of ${budgeted.length} runs within`;
  return { goal: '3', what, bound: 'every run', measured, met: over === 0, source: GOAL_SOURCES.memory };
}

/** The configurations of the paper's techniques; `fast` is goal 7's and is shown apart. */
const PAPER_CONFIGS: readonly MatrixConfig[] = ['baseline', 'lpl', 'tdtm', 'cidl', 'all', 'paper'];

function orchestration(name: string, report: BenchReport | undefined, limit: number, source: string): GoalRow {
  const what = `denoise time outside block runs, ${name} (worst configuration, cold / warm)`;
  const bound = `≤ ${limit * 100} %`;
  const rows = (report?.matrix ?? []).filter((row) => PAPER_CONFIGS.includes(row.config));
  if (rows.length === 0) return notMeasured('4', what, bound, source);
  const worst = (side: 'cold' | 'warm'): MatrixRow => rows.reduce((a, b) => (b.outsideBlocks[side] > a.outsideBlocks[side] ? b : a));
  const [cold, warm] = [worst('cold'), worst('warm')];
  const fast = report === undefined ? undefined : matrixRow(report, 'fast');
  const fastNote = fast === undefined ? '' : `; fast ${percent(fast.outsideBlocks.cold)} / ${percent(fast.outsideBlocks.warm)}`;
  const measured = `${percent(cold.outsideBlocks.cold)} (${cold.label}) / ${percent(warm.outsideBlocks.warm)} (${warm.label})${fastNote}`;
  return { goal: '4', what, bound, measured, met: cold.outsideBlocks.cold <= limit && warm.outsideBlocks.warm <= limit, source };
}

function startup(report: GoalInputs['startup']): GoalRow[] {
  const source = GOAL_SOURCES.startup;
  const help = '`ondevice-sora --help`, from start to exit';
  const first = 'first block running after start, models/shapes';
  const [helpBound, firstBound] = [`≤ ${HELP_GOAL_MS} ms`, `≤ ${FIRST_BLOCK_GOAL_MS} ms`];
  if (report === undefined) return [notMeasured('5', help, helpBound, source), notMeasured('5', first, firstBound, source)];
  const ms = (value: number): string => `${value.toFixed(0)} ms (${two(value / report.bareNodeMs)}× a bare Node start, ${report.bareNodeMs.toFixed(0)} ms)`;
  return [
    { goal: '5', what: help, bound: helpBound, measured: ms(report.help.medianMs), met: report.help.medianMs <= HELP_GOAL_MS, source },
    {
      goal: '5',
      what: first,
      bound: firstBound,
      measured: ms(report.firstBlock.medianMs),
      met: report.firstBlock.medianMs <= FIRST_BLOCK_GOAL_MS,
      source,
    },
  ];
}

function compression(report: GoalInputs['compression']): GoalRow {
  const what = 'float16 and int8 weight storage: bytes, load, peak RSS, step time and quality per setting';
  const shapes = report?.cases.find((testCase) => testCase.name.startsWith('models/shapes'));
  const bytes = (setting: string): number | undefined => shapes?.settings.find((s) => s.setting === setting)?.bytes;
  const [fp32, fp16, int8] = [bytes('fp32'), bytes('fp16'), bytes('int8')];
  if (fp32 === undefined || fp16 === undefined || int8 === undefined) return notMeasured('6', what, 'a table', GOAL_SOURCES.compression);
  const quality = shapes!.settings.map((s) => (s.quality === undefined ? undefined : `${s.setting} ${s.quality.overall.toFixed(3)}`)).filter(Boolean);
  const measured = `models/shapes bytes ÷${two(fp32 / fp16)} (fp16), ÷${two(fp32 / int8)} (int8); eval ${quality.join(', ')}`;
  return { goal: '6', what, bound: 'a table', measured, met: true, source: GOAL_SOURCES.compression };
}

/** Goal 7 is set "in `eval`": its speed-up (warm runs, every held-out prompt) decides; the matrix's is shown beside. */
function fastPreset(evaluation: EvalReport | undefined, matrix: BenchReport | undefined, paperWidth: BenchReport | undefined): GoalRow {
  const what = '`--preset fast` in `eval` on models/shapes: STDiT speed-up over the baseline, and quality';
  const source = `${GOAL_SOURCES.evalFast}, ${GOAL_SOURCES.shapesMatrix}`;
  const bound = `≥ ${BOUNDS.fastSpeedup}× at ≥ ${two(BOUNDS.fastQuality)}`;
  const fast = evaluation?.summary.find((row) => row.config === 'fast');
  if (fast?.relative == null) return notMeasured('7', what, bound, source);
  const side = (report: BenchReport | undefined, name: string): string => {
    const speedup = report === undefined ? undefined : matrixRow(report, 'fast')?.speedup;
    return speedup == null ? '' : `; bench ${name} ${two(speedup.cold.stdit)}× cold / ${two(speedup.warm.stdit)}× warm`;
  };
  const measured =
    `${two(fast.speedup)}× at ${two(fast.relative)} of the baseline's quality (${evaluation!.settings.prompts} prompts)` +
    `${side(matrix, 'models/shapes')}${side(paperWidth, 'paper width')}`;
  return { goal: '7', what, bound, measured, met: fast.speedup >= BOUNDS.fastSpeedup && fast.relative >= BOUNDS.fastQuality, source };
}

function scaling(report: ScalingReport | undefined): GoalRow {
  const what = '`bench --scaling`: step efficiency against the GEMM roof at every point from 128² up';
  const points = (report?.points ?? []).filter((point) => Math.min(point.width, point.height) >= 128 && point.efficiency !== null);
  const bound = `≥ ${two(BOUNDS.scalingEfficiency)}`;
  if (points.length === 0) return notMeasured('8', what, bound, GOAL_SOURCES.scaling);
  const efficiencies = points.map((point) => point.efficiency!);
  const [low, high] = [Math.min(...efficiencies), Math.max(...efficiencies)];
  const measured = `${two(low)}–${two(high)} over ${points.length} points`;
  return { goal: '8', what, bound, measured, met: low >= BOUNDS.scalingEfficiency, source: GOAL_SOURCES.scaling };
}

export function goalRows(inputs: GoalInputs): GoalRow[] {
  return [
    blockEfficiency(inputs.paperWidth256),
    paperOfBound(inputs.paperWidthMatrix),
    paperVersusLpl([
      ['paper width', inputs.paperWidthMatrix],
      ['models/shapes', inputs.shapesMatrix],
    ]),
    cidlOverlap(inputs.cidl),
    cidlFitting(inputs.shapesCidl),
    budgetKept(inputs.memory),
    orchestration('paper width', inputs.paperWidthMatrix, 0.03, GOAL_SOURCES.paperWidthMatrix),
    orchestration('models/shapes', inputs.shapesMatrix, 0.05, GOAL_SOURCES.shapesMatrix),
    ...startup(inputs.startup),
    compression(inputs.compression),
    fastPreset(inputs.evalFast, inputs.shapesMatrix, inputs.paperWidthMatrix),
    scaling(inputs.scaling),
  ];
}

export function renderGoals(rows: readonly GoalRow[]): string {
  const verdict = (met: boolean | null): string => (met === null ? 'not measured' : met ? 'met' : 'NOT MET');
  return rows.map((row) => `goal ${row.goal}  ${verdict(row.met).padEnd(12)}  ${row.what}\n         bound ${row.bound}; measured ${row.measured}`).join('\n');
}

/** Reads the reports under `dir` (those written from `since` on, when given) and writes goals.json; returns the rows. */
export async function writeGoals(dir: string, since?: number): Promise<GoalRow[]> {
  const rows = goalRows(await readGoalInputs(dir, since));
  await mkdir(dir, { recursive: true });
  const report = { createdAt: new Date().toISOString(), issue: 17, goals: rows };
  await writeFile(join(dir, 'goals.json'), `${JSON.stringify(report, null, 2)}\n`);
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { dir: { type: 'string', default: join(ROOT, 'bench-results') } } });
  writeGoals(resolve(values.dir)).then((rows) => console.log(renderGoals(rows)), (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  });
}
