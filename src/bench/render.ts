/** The bench report for people (terminal tables, an SVG chart) and spreadsheets (CSV). */
import { formatTable } from '../cli/format.js';
import type { BenchReport, ComponentRow, GemmRoof, MatrixRow, RunnerComparison, Stats } from './report.js';

/** Milliseconds with as many decimals as their size deserves. */
function formatMs(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
}

/** `median` alone for one sample, else `median (min–max)`. */
function formatStats(stats: Stats | null, scale = 1): string {
  if (stats === null) return '-';
  const f = (ms: number): string => (scale === 1 ? formatMs(ms) : (ms / scale).toFixed(2));
  return stats.n === 1 ? f(stats.medianMs) : `${f(stats.medianMs)} (${f(stats.minMs)}–${f(stats.maxMs)})`;
}

export function headerText(report: BenchReport): string {
  const { model, settings: s, machine, backend } = report;
  return (
    `${model.name} (${model.dir}): ${s.width}x${s.height}, ${s.numFrames} frames, ${s.steps} steps, seed ${s.seed}; ` +
    `${s.repeat} fresh session${s.repeat === 1 ? '' : 's'} per configuration\n` +
    `${backend.kind} ${backend.device} on ${machine.cpu} (${machine.threads} threads), node ${report.tool.node}`
  );
}

export function componentsText(rows: readonly ComponentRow[]): string {
  const table = formatTable(
    [
      ['component', 'block', 'calls/run', 'load', 'run cold', 'run warm', 'GFLOP/call', 'of roof'],
      ...rows.map((row) => [
        row.component,
        row.config === 'baseline' ? row.name : `${row.name} (${row.config})`,
        String(row.callsPerRun),
        formatStats(row.load),
        formatStats(row.runCold),
        formatStats(row.runWarm),
        row.flopsPerCall === null ? '-' : (row.flopsPerCall / 1e9).toFixed(row.flopsPerCall < 1e9 ? 3 : 1),
        row.efficiency === null ? '-' : row.efficiency.toFixed(2),
      ]),
    ],
    [2, 3, 4, 5, 6, 7],
  );
  return `per block, baseline or (the configuration that ran it) (ms per call: median (min–max); of roof = warm GFLOP/s ÷ the GEMM roof):\n${table}`;
}

export function roofText(roof: GemmRoof | null): string {
  if (roof === null) return 'fp32 GEMM roof: not measured (the blocks do not run on local ONNX Runtime)';
  const [m, k, n] = roof.shape;
  return (
    `fp32 GEMM roof: ${(roof.flopsPerSecond / 1e9).toFixed(1)} GFLOP/s median, ${(roof.peakFlopsPerSecond / 1e9).toFixed(1)} fastest ` +
    `([${m}×${k}]·[${k}×${n}] MatMul, ${formatStats(roof.run)} ms per run, block thread settings)`
  );
}

/**
 * The layout of the paper's Table 5: one column per configuration, rows STDiT and Total (seconds), each followed
 * by its speed-up over the baseline; cold (as `generate`) then warm (as the later prompts of `batch`).
 */
const pct = (share: number): string => `${(share * 100).toFixed(1)} %`;

export function matrixText(rows: readonly MatrixRow[]): string {
  const line = (label: string, cell: (row: MatrixRow) => string): string[] => [label, ...rows.map(cell)];
  const seconds = (state: 'cold' | 'warm', part: 'denoise' | 'total') => (row: MatrixRow) =>
    formatStats(row[state][part], 1000);
  const times = (state: 'cold' | 'warm', key: 'stdit' | 'total') => (row: MatrixRow) =>
    row.speedup === null ? '-' : `${row.speedup[state][key].toFixed(2)}×`;
  const table = formatTable(
    [
      ['', ...rows.map((row) => row.label)],
      line('cold STDiT', seconds('cold', 'denoise')),
      line('  speed-up', times('cold', 'stdit')),
      line('cold Total', seconds('cold', 'total')),
      line('  speed-up', times('cold', 'total')),
      line('warm STDiT', seconds('warm', 'denoise')),
      line('  speed-up', times('warm', 'stdit')),
      line('warm Total', seconds('warm', 'total')),
      line('  speed-up', times('warm', 'total')),
      line('evaluations', (row) => String(row.evaluations)),
      line('outside blocks', (row) => `${pct(row.outsideBlocks.cold)} / ${pct(row.outsideBlocks.warm)}`),
      line('STDiT bound', (row) => (row.bound === null ? '-' : `${row.bound.stdit.toFixed(2)}×`)),
      line('  of bound', (row) => (row.bound === null ? '-' : `${row.bound.ofBound.cold.toFixed(2)} / ${row.bound.ofBound.warm.toFixed(2)}`)),
    ],
    rows.map((_, i) => i + 1),
  );
  return `ablation (seconds: median (min–max); cold = fresh session, warm = blocks loaded; outside blocks: share of STDiT time not in block runs, cold / warm; STDiT bound: the speed-up if only block runs took time, each as long as its warm call; of bound: the measured speed-up's share of it, cold / warm):\n${table}`;
}

export function reportText(report: BenchReport): string {
  const remote = report.remote === null ? [] : [remoteText(report.remote)];
  return [headerText(report), roofText(report.roof), componentsText(report.components), matrixText(report.matrix), ...remote].join(
    '\n\n',
  );
}

function remoteText(comparison: RunnerComparison): string {
  const { perStepWarm, ratio, bytesPerStep } = comparison;
  const bytes = (counts: RunnerComparison['bytesPerStep']['local']): string =>
    `${counts.toRuntime} B to the runtime, ${counts.toHost} B to the host, ${counts.withinRuntime} B within it (${counts.copiedWithinRuntime} B copied)`;
  return [
    'runner vs local ONNX (warm baseline, per denoising step):',
    `  time: remote ${perStepWarm.remote.medianMs.toFixed(1)} ms, local ${perStepWarm.local.medianMs.toFixed(1)} ms, ratio ${ratio.toFixed(3)}`,
    `  bytes, remote: ${bytes(bytesPerStep.remote)}`,
    `  bytes, local:  ${bytes(bytesPerStep.local)}`,
  ].join('\n');
}

function csv(rows: readonly (readonly (string | number | null)[])[]): string {
  const cell = (value: string | number | null): string => {
    const text = value === null ? '' : String(value);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return rows.map((row) => row.map(cell).join(',')).join('\n') + '\n';
}

const statsColumns = (prefix: string): string[] => ['n', 'median_ms', 'min_ms', 'max_ms'].map((c) => `${prefix}_${c}`);
const statsCells = (stats: Stats | null): (number | null)[] =>
  stats === null ? [null, null, null, null] : [stats.n, stats.medianMs, stats.minMs, stats.maxMs];

export function componentsCsv(rows: readonly ComponentRow[]): string {
  return csv([
    [
      'component',
      'block',
      'config',
      'calls_per_run',
      ...statsColumns('load'),
      ...statsColumns('run_cold'),
      ...statsColumns('run_warm'),
      'flops_per_call',
      'efficiency',
    ],
    ...rows.map((row) => [
      row.component,
      row.name,
      row.config,
      row.callsPerRun,
      ...statsCells(row.load),
      ...statsCells(row.runCold),
      ...statsCells(row.runWarm),
      row.flopsPerCall,
      row.efficiency,
    ]),
  ]);
}

/** One line per configuration, state and part of the generation. */
export function matrixCsv(rows: readonly MatrixRow[]): string {
  const lines: (string | number | null)[][] = [['config', 'state', 'part', 'evaluations', 'n', 'median_ms', 'min_ms', 'max_ms', 'speedup']];
  for (const row of rows) {
    for (const state of ['cold', 'warm'] as const) {
      for (const [part, stats] of Object.entries(row[state])) {
        const key = part === 'denoise' ? 'stdit' : part === 'total' ? 'total' : null;
        const speedup = key === null || row.speedup === null ? null : row.speedup[state][key];
        lines.push([row.config, state, part, row.evaluations, ...statsCells(stats), speedup]);
      }
    }
  }
  return csv(lines);
}

const escapeXml = (text: string): string =>
  text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

/** Segments of a bar, in pipeline order. */
const SEGMENTS = [
  { label: 'T5 (with tokenize)', color: '#4e79a7', ms: (p: MatrixRow['cold']) => p.tokenizer.medianMs + p.textEncoder.medianMs },
  { label: 'STDiT', color: '#e15759', ms: (p: MatrixRow['cold']) => p.denoise.medianMs },
  { label: 'VAE', color: '#59a14f', ms: (p: MatrixRow['cold']) => p.vae.medianMs },
  { label: 'encode', color: '#f28e2b', ms: (p: MatrixRow['cold']) => p.write.medianMs },
] as const;

/**
 * Horizontal stacked bars, one cold and one warm per configuration, split into T5, STDiT, VAE and encode
 * (medians), labelled with the total and its speed-up. Written by hand: a chart library would be a large
 * dependency for a dozen rectangles.
 */
export function matrixSvg(report: BenchReport): string {
  const rows = report.matrix;
  const left = 130;
  const barArea = 480;
  const width = left + barArea + 150;
  const barHeight = 18;
  const groupHeight = 2 * barHeight + 16;
  const top = 56;
  const legendY = top + rows.length * groupHeight + 10;
  const height = legendY + 30;
  const longest = Math.max(...rows.flatMap((row) => [row.cold.total.medianMs, row.warm.total.medianMs]));
  const scale = barArea / longest;
  const { settings: s, model } = report;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">${escapeXml(`ondevice-sora bench: ${model.name}`)}</text>`,
    `<text x="12" y="40" fill="#555">${escapeXml(
      `${s.width}x${s.height}, ${s.numFrames} frames, ${s.steps} steps; median of ${s.repeat}; seconds (speed-up vs baseline)`,
    )}</text>`,
  ];
  rows.forEach((row, i) => {
    const y = top + i * groupHeight;
    parts.push(`<text x="12" y="${y + barHeight + 4}" font-weight="bold">${escapeXml(row.label)}</text>`);
    (['cold', 'warm'] as const).forEach((state, j) => {
      const barY = y + j * barHeight;
      let x = left;
      for (const segment of SEGMENTS) {
        const w = segment.ms(row[state]) * scale;
        parts.push(`<rect x="${x.toFixed(1)}" y="${barY}" width="${w.toFixed(1)}" height="${barHeight - 3}" fill="${segment.color}"/>`);
        x += w;
      }
      const total = row[state].total.medianMs;
      const times = row.speedup === null ? '' : ` (${row.speedup[state].total.toFixed(2)}×)`;
      parts.push(`<text x="${left - 8}" y="${barY + 12}" text-anchor="end" fill="#555">${state}</text>`);
      parts.push(`<text x="${(left + total * scale + 6).toFixed(1)}" y="${barY + 12}">${(total / 1000).toFixed(2)} s${times}</text>`);
    });
  });
  let legendX = left;
  for (const segment of SEGMENTS) {
    parts.push(`<rect x="${legendX}" y="${legendY}" width="12" height="12" fill="${segment.color}"/>`);
    parts.push(`<text x="${legendX + 16}" y="${legendY + 10}">${escapeXml(segment.label)}</text>`);
    legendX += 40 + segment.label.length * 7;
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
