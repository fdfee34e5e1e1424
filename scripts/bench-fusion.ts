/**
 * The effect of the fusable tanh-GELU export on STDiT step time, in one process: two paper-width synthetic models
 * (hidden 1152, 2 block pairs) made from the same seeded weights, one with `--plain-gelu` (torch's export) and one as
 * exported by default (the form ONNX Runtime fuses into FastGelu), run alternately A, B, A, B at one size with the
 * GEMM roof timed before and after, so machine load weighs on both alike.
 *
 *     npx tsx scripts/bench-fusion.ts [--size 256] [--frames 17] [--reps 2] [--out bench-results/fusion.json]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { pino } from 'pino';
import { gemmRoof, PAPER_GEMM, timeGemm } from '../src/bench/gemm-roof.js';
import { summarize } from '../src/bench/report.js';
import { runScaling, withScalingEfficiency, type ScalingPoint } from '../src/bench/scaling.js';
import { loadModel, type Model } from '../src/model/manifest.js';
import { createBackend } from '../src/runtime/create-backend.js';
import { findFfmpeg } from '../src/video/ffmpeg.js';

const ROOT = resolve(import.meta.dirname, '..');
const logger = pino({ level: 'warn' });

function makeModel(out: string, fusable: boolean): void {
  const args = ['scripts/make_synthetic_model.py', '--out', out, '--shape', 'paper', '--depth', '2', ...(fusable ? [] : ['--plain-gelu'])];
  execFileSync('/usr/bin/python3', args, { cwd: ROOT, stdio: 'inherit' });
}

async function roofSamples(): Promise<number[]> {
  const backend = createBackend({ backend: 'onnx', logger });
  try {
    return await timeGemm(backend, PAPER_GEMM);
  } finally {
    await backend.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { size: { type: 'string' }, frames: { type: 'string' }, reps: { type: 'string' }, out: { type: 'string' }, models: { type: 'string' } },
  });
  const side = Number(values.size ?? 256);
  const numFrames = Number(values.frames ?? 17);
  const reps = Number(values.reps ?? 2);
  const scratch = await mkdtemp(join(tmpdir(), 'ondevice-sora-bench-fusion-'));
  try {
    // --models A,B: existing folders (plain, fusable) instead of making them.
    const [plainDir, fusedDir] = values.models?.split(',') ?? [join(scratch, 'plain'), join(scratch, 'fusable')];
    if (values.models === undefined) {
      makeModel(plainDir!, false);
      makeModel(fusedDir!, true);
    }
    const models: Record<'plain' | 'fusable', Model> = { plain: await loadModel(plainDir!), fusable: await loadModel(fusedDir!) };
    const ffmpeg = await findFfmpeg(undefined);
    const settings = {
      prompt: 'a red ball bouncing on a wooden floor',
      aestheticScore: null,
      seed: 42,
      steps: 1,
      cfgScale: 7,
      numFrames,
      width: side,
      height: side,
      fps: 24,
      timestepTransform: 'opensora' as const,
    };
    const before = await roofSamples();
    const points: Record<'plain' | 'fusable', ScalingPoint[]> = { plain: [], fusable: [] };
    for (let rep = 0; rep < reps; rep++) {
      for (const kind of ['plain', 'fusable'] as const) {
        const plan = { model: models[kind], settings, resolutions: [side], frameCounts: [numFrames], ffmpegPath: ffmpeg.path, workDir: scratch, logger };
        points[kind].push(...(await runScaling(plan)));
        console.log(`${kind} rep ${rep + 1}: step ${points[kind].at(-1)!.step.medianMs.toFixed(0)} ms`);
      }
    }
    const roof = gemmRoof(PAPER_GEMM, [...before, ...(await roofSamples())]);
    const summary = Object.fromEntries(
      (['plain', 'fusable'] as const).map((kind) => {
        const withEfficiency = points[kind].map((point) => withScalingEfficiency(point, roof));
        return [kind, { stepMs: withEfficiency.map((p) => p.step.medianMs), efficiency: withEfficiency.map((p) => p.efficiency), flopsPerStep: withEfficiency[0]!.flopsPerStep }];
      }),
    );
    const median = (kind: 'plain' | 'fusable'): number => summarize(points[kind].map((p) => p.step.medianMs)).medianMs;
    const ratio = median('plain') / median('fusable');
    const report = { createdAt: new Date().toISOString(), size: side, numFrames, reps, roof, ...summary, plainOverFusable: Math.round(ratio * 1000) / 1000 };
    const out = resolve(values.out ?? join(ROOT, 'bench-results', 'fusion.json'));
    await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(JSON.stringify(report, null, 2));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
