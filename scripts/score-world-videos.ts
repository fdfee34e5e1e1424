/**
 * Scores a folder of raw world videos (scripts/render_shapes_world.py's format) with the strict evaluator: the
 * share of objects passing each criterion (a two-object scene counts each object, with the scene's background),
 * the median shape measurements, and every failure with its reason. For
 * checking the evaluator on ground truth and finding what limits a model (the VAE's reconstructions of ground truth
 * against the model's own videos).
 *
 *   npx tsx scripts/score-world-videos.ts DIR [--world models/shapes/world.json] [--failures]
 */
import { parseArgs } from 'node:util';
import { median } from '../src/eval/frame-analysis.js';
import { CRITERIA, scorePairVideo, scoreVideo, type VideoScore } from '../src/eval/video-score.js';
import { heldoutAttributes, loadWorld, pairAttributes } from '../src/eval/world.js';
import { isPairEntry, readWorldVideos } from '../src/eval/world-videos.js';

type Scored = Pick<VideoScore, (typeof CRITERIA)[number]>;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { world: { type: 'string', default: 'models/shapes/world.json' }, failures: { type: 'boolean', default: false } },
});
if (positionals.length !== 1) throw new Error('usage: score-world-videos.ts DIR [--world FILE] [--failures]');
const world = await loadWorld(values.world);
const videos = await readWorldVideos(positionals[0]!);
const scores: { file: string; prompt: string; score: Scored }[] = videos.flatMap(({ file, entry, video }) => {
  if (!isPairEntry(entry)) return [{ file, prompt: entry.prompt, score: scoreVideo(video, heldoutAttributes(entry), world) }];
  const { background, objects } = scorePairVideo(video, pairAttributes(entry), world);
  return objects.map((object, i) => ({ file: `${file} object ${i + 1}`, prompt: entry.prompt, score: { background, ...object } }));
});
const share = (pass: (score: Scored) => boolean): string => (scores.filter(({ score }) => pass(score)).length / scores.length).toFixed(2);
const middle = (pick: (score: Scored) => number | null): string => {
  const measured = scores.flatMap(({ score }) => {
    const value = pick(score);
    return value === null ? [] : [value];
  });
  return measured.length === 0 ? '–' : median(measured).toFixed(3);
};
const overall = scores.reduce((sum, { score }) => sum + CRITERIA.filter((criterion) => score[criterion].pass).length / CRITERIA.length, 0);
console.log(`${videos.length} videos (${scores.length} objects) in ${positionals[0]}`);
console.log(`${CRITERIA.map((criterion) => `${criterion} ${share((score) => score[criterion].pass)}`).join(', ')}, overall ${(overall / scores.length).toFixed(2)}`);
console.log(`median shape aspect ${middle((s) => s.shape.aspect)}, IoU ${middle((s) => s.shape.iou)}, circle radius variation ${middle((s) => (s.shape.expected === 'circle' ? s.shape.radialCv : null))}`);
for (const shape of world.shapes) {
  const mine = scores.filter(({ score }) => score.shape.expected === shape);
  console.log(`  ${shape}: shape passes ${mine.filter(({ score }) => score.shape.pass).length}/${mine.length}`);
}
if (values.failures) {
  for (const { file, prompt, score } of scores) {
    const failed = CRITERIA.filter((criterion) => !score[criterion].pass);
    if (failed.length > 0) console.log(`${file} "${prompt}": ${failed.map((criterion) => `${criterion} ${JSON.stringify(score[criterion])}`).join('; ')}`);
  }
}
