/** Text for people: the comparison table of `eval` (Markdown) and the criterion lines of `eval --video`. */
import type { Color } from '../color.js';
import type { EvalReport } from './report.js';
import { OBJECT_CRITERIA, type PairScore, type VideoScore } from './video-score.js';

type ObjectScore = Pick<VideoScore, (typeof OBJECT_CRITERIA)[number]>;

const HEADER = ['configuration', 'background', 'colour', 'shape', 'motion', 'consistency', 'overall', 'vs baseline', 'denoise (STDiT)', 'speedup'];
const ALIGN = [':--', ...HEADER.slice(1).map(() => '--:')];

/** A caption line, then one table row per configuration. */
export function reportTable(report: EvalReport): string {
  const { settings, model } = report;
  const seeds = settings.seeds.length === 1 ? `seed ${settings.seeds[0]}` : `${settings.seeds.length} seeds`;
  const caption =
    `${model.name}: ${settings.prompts} held-out prompts × ${seeds}, ${settings.steps} steps, ` +
    `${settings.width}x${settings.height}, ${settings.numFrames} frames; each criterion is the share of videos passing it`;
  const rows = report.summary.map((row) => [
    row.config,
    share(row.background),
    share(row.colour),
    share(row.shape),
    share(row.motion),
    share(row.consistency),
    share(row.overall),
    row.relative === null ? '–' : row.relative.toFixed(2),
    `${(row.denoiseMs / 1000).toFixed(2)} s`,
    `${row.speedup.toFixed(2)}×`,
  ]);
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [caption, '', line(HEADER), line(ALIGN), ...rows.map(line)].join('\n');
}

function share(value: number): string {
  return value.toFixed(2);
}

type Paint = (text: string, color: Color) => string;
type Row = readonly [name: string, pass: boolean, text: string];

const rgbText = (rgb: readonly number[] | null): string => (rgb === null ? 'none' : rgb.map((c) => Math.round(c)).join(','));
const percent = (value: number): string => `${Math.round(value * 100)}%`;
const found = (detected: string | null): string => detected ?? 'none';

function backgroundRow({ background }: Pick<VideoScore, 'background'>): Row {
  return ['background', background.pass, `${found(background.detected)} (expected ${background.expected}; border rgb ${rgbText(background.rgb)})`];
}

/** The rows of one object's criteria: what was found, what was expected, and the measurements behind it. */
function objectRows({ colour, shape, motion, consistency }: ObjectScore): Row[] {
  const votes = Object.entries(shape.votes)
    .map(([name, count]) => `${name} ${count}`)
    .join(', ');
  const signed = (value: number): string => `${value >= 0 ? '+' : ''}${value.toFixed(1)}`;
  const travel =
    motion.displacement === null
      ? 'no track'
      : `travel ${motion.displacement.map(signed).join(', ')} px` +
        (motion.angleErrorDeg === null ? '' : `, ${Math.round(motion.angleErrorDeg)}° off`) +
        (motion.trackRms === null ? '' : `, ${motion.trackRms.toFixed(1)} px off a straight line`) +
        (motion.sizeRatio === null ? '' : `, size ×${motion.sizeRatio.toFixed(2)}`);
  const geometry =
    shape.aspect === null || shape.iou === null || shape.radialCv === null
      ? 'no measurable frame'
      : `aspect ${shape.aspect.toFixed(2)}, IoU with an upright ${shape.expected} ${shape.iou.toFixed(2)}, radius varies ${percent(shape.radialCv)}`;
  return [
    ['colour', colour.pass, `${found(colour.detected)} (expected ${colour.expected}; object rgb ${rgbText(colour.rgb)})`],
    ['shape', shape.pass, `${found(shape.detected)} (expected ${shape.expected}; of ${shape.measurable} measurable frames: ${votes}; median ${geometry})`],
    ['motion', motion.pass, `${found(motion.detected)} (expected ${motion.expected}; ${travel})`],
    [
      'consistency',
      consistency.pass,
      `object in ${percent(consistency.presence)} of frames, steady area in ${percent(consistency.steadyArea)} and steady ` +
        `position in ${percent(consistency.steadyPosition)} of transitions, same colour in ${percent(consistency.steadyColour)} of its frames`,
    ],
  ];
}

function rowLines(rows: readonly Row[], paint: Paint, indent = ''): string[] {
  const mark = (pass: boolean): string => (pass ? paint('pass', 'green') : paint('FAIL', 'red'));
  return rows.map(([name, pass, text]) => `${indent}${name.padEnd(12)} ${mark(pass)}  ${text}`);
}

/** One line per criterion: pass or FAIL, what was found, what was expected, and the measurements behind it. */
export function scoreLines(score: VideoScore, paint: Paint): string {
  const rows = [backgroundRow(score), ...objectRows(score)];
  return [...rowLines(rows, paint), `${'score'.padEnd(12)} ${score.passed}/${rows.length}`].join('\n');
}

/** The background's line, then each object's criteria under a line naming it. */
export function pairScoreLines(score: PairScore, paint: Paint): string {
  const objects = score.objects.flatMap((object, i) => [
    `object ${i + 1}: ${object.colour.expected} ${object.shape.expected} ${object.motion.expected}`,
    ...rowLines(objectRows(object), paint, '  '),
  ]);
  const total = 1 + score.objects.length * OBJECT_CRITERIA.length;
  return [...rowLines([backgroundRow(score)], paint), ...objects, `${'score'.padEnd(12)} ${score.passed}/${total}`].join('\n');
}
