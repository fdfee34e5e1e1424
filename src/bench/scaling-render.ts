/** `bench --scaling` for people: a table, and a log-log chart of step time against FLOPs with the roof's line. */
import { formatTable } from '../cli/format.js';
import type { ScalingPoint, ScalingReport } from './scaling.js';

const gflop = (flops: number | null): string => (flops === null ? '-' : (flops / 1e9).toFixed(1));
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

export function scalingText(report: ScalingReport): string {
  const { model, roof } = report;
  const roofLine =
    roof === null ? 'no GEMM roof (not local ONNX Runtime)' : `fp32 GEMM roof ${(roof.flopsPerSecond / 1e9).toFixed(1)} GFLOP/s (median)`;
  const table = formatTable(
    [
      ['size', 'frames', 'tokens', 'GFLOP/step', 'step ms', 'first step ms', 'peak RSS MiB', 'of roof'],
      ...report.points.map((p) => [
        `${p.width}x${p.height}`,
        String(p.numFrames),
        String(p.tokens),
        gflop(p.flopsPerStep),
        p.step.medianMs.toFixed(0),
        p.firstStepMs.toFixed(0),
        mib(p.peakRssBytes),
        p.efficiency === null ? '-' : p.efficiency.toFixed(2),
      ]),
    ],
    [1, 2, 3, 4, 5, 6, 7],
  );
  return (
    `${model.name} (${model.dir}): STDiT step time by size, ${report.steps} step${report.steps === 1 ? '' : 's'} per point; ${roofLine}\n` +
    `(step = Σ STDiT block runs per evaluation, median of the warm ones, all but the first where there are several;\n` +
    ` first step = the first evaluation's, which also allocates; loads excluded; peak RSS of the process after the point)\n${table}`
  );
}

const escapeXml = (text: string): string =>
  text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

/**
 * Step time (y) against FLOPs per step (x), both logarithmic: points on a line parallel to the roof's grow as
 * their FLOPs do; points rising above it lose efficiency as the work grows. Hand-written like matrixSvg.
 */
export function scalingSvg(report: ScalingReport): string {
  const points = report.points.filter((p): p is ScalingPoint & { flopsPerStep: number } => p.flopsPerStep !== null);
  const [left, top, plot] = [80, 50, 420];
  const width = left + plot + 200;
  const height = top + plot + 60;
  const xs = points.map((p) => Math.log10(p.flopsPerStep));
  const roofMs = (flops: number): number | null => (report.roof === null ? null : (flops / report.roof.flopsPerSecond) * 1000);
  const ys = points.flatMap((p) => [Math.log10(p.step.medianMs), ...(roofMs(p.flopsPerStep) === null ? [] : [Math.log10(roofMs(p.flopsPerStep)!)])]);
  const span = (values: number[]): [number, number] => {
    const [lo, hi] = [Math.min(...values), Math.max(...values)];
    return hi - lo < 0.5 ? [lo - 0.25, hi + 0.25] : [lo - 0.1, hi + 0.1];
  };
  const [x0, x1] = xs.length === 0 ? [0, 1] : span(xs);
  const [y0, y1] = ys.length === 0 ? [0, 1] : span(ys);
  const px = (lx: number): number => left + ((lx - x0) / (x1 - x0)) * plot;
  const py = (ly: number): number => top + plot - ((ly - y0) / (y1 - y0)) * plot;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">${escapeXml(`ondevice-sora bench --scaling: ${report.model.name}`)}</text>`,
    `<text x="12" y="40" fill="#555">STDiT step time (ms, log) against FLOPs per step (GFLOP, log); dashed: time at the GEMM roof</text>`,
    `<rect x="${left}" y="${top}" width="${plot}" height="${plot}" fill="none" stroke="#999"/>`,
    `<text x="${left}" y="${top + plot + 18}" fill="#555">${gflop(10 ** x0)}</text>`,
    `<text x="${left + plot}" y="${top + plot + 18}" text-anchor="end" fill="#555">${gflop(10 ** x1)} GFLOP</text>`,
    `<text x="${left - 6}" y="${top + plot}" text-anchor="end" fill="#555">${(10 ** y0).toFixed(0)}</text>`,
    `<text x="${left - 6}" y="${top + 10}" text-anchor="end" fill="#555">${(10 ** y1).toFixed(0)} ms</text>`,
  ];
  if (report.roof !== null) {
    const a = roofMs(10 ** x0)!;
    const b = roofMs(10 ** x1)!;
    parts.push(
      `<line x1="${px(x0).toFixed(1)}" y1="${py(Math.log10(a)).toFixed(1)}" x2="${px(x1).toFixed(1)}" y2="${py(Math.log10(b)).toFixed(1)}" stroke="#888" stroke-dasharray="5,4"/>`,
    );
  }
  for (const p of points) {
    const [cx, cy] = [px(Math.log10(p.flopsPerStep)), py(Math.log10(p.step.medianMs))];
    parts.push(`<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="4" fill="#e15759"/>`);
    const label = `${p.width}² ×${p.numFrames}${p.efficiency === null ? '' : ` ${p.efficiency.toFixed(2)}`}`;
    parts.push(`<text x="${(cx + 7).toFixed(1)}" y="${(cy + 4).toFixed(1)}" font-size="10">${escapeXml(label)}</text>`);
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
