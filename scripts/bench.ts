/**
 * `npm run bench` (not a test): the standard ablation matrix (baseline, LPL, TDTM, CI-DL, All) with per-block
 * times, through the built CLI as a user would run it, written to bench-results/ (git-ignored):
 *
 * 1. bench-results/tiny/: the shipped tiny model at its defaults (256×256, 17 frames, 30 steps), 3 sessions each.
 * 2. bench-results/synthetic-opensora-1.2/: a paper-shaped STDiT (STDiT3-XL/2 width: hidden 1152, 16 heads, ~170 MB
 *    per block) with 2 block pairs instead of 28 to fit the time, made by `models make-synthetic` into a temporary
 *    folder and deleted afterwards; 128×128, 10 steps, 3 sessions each. Skipped, saying why, when Python with torch
 *    and onnx is missing (`models make-synthetic` exits with the DEPENDENCY status then).
 *    bench-results/scaling-synthetic-opensora-1.2/: `bench --scaling` on the same model (64², 128², 256² × 17 and 68
 *    frames, 4 steps per point): warm step time (the first step apart), FLOPs, peak RSS and efficiency against the GEMM
 *    roof, with a chart.
 * 3. bench-results/memory.json: the memory budget, peak RSS sampled from outside at three budgets on models/shapes
 *    and on that synthetic model (scripts/bench-memory.ts).
 * 4. bench-results/compression.json: float32, float16 and int8 weight storage (`models compress`): bytes, load time,
 *    peak RSS, STDiT step time, strict-eval quality (16 prompts) and frames against float32 on models/shapes; bytes,
 *    load time and peak RSS on that synthetic model (scripts/bench-compression.ts).
 * 5. bench-results/startup.json: `--help` and the first block run on models/shapes against a bare Node start
 *    (scripts/bench-startup.ts).
 * 6. For issue 17's goals besides:
 *    - bench-results/shapes/: the matrix on models/shapes, 3 sessions each; shapes-cidl/: baseline and CI-DL, 9 each;
 *    - bench-results/paper-width-256/: `--matrix tdtm` on the synthetic model at 256², 68 frames, 2 steps (block
 *      efficiency where the issue sets it), 3 sessions each, since one warm call per block spreads ±5 % between runs;
 *    - bench-results/cidl.json: scripts/bench-cidl.ts on the synthetic model, 480M budget, graph cache;
 *    - bench-results/eval-fast.json: `eval --configs baseline,fast` on every held-out prompt.
 *    Last, bench-results/goals.json and a table: each goal's bound, what was measured, met or not (bench-goals.ts).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compressionCases, runCompressionBench } from './bench-compression.js';
import { cli, paperWidthModel, runMemoryBench, standardCases } from './bench-memory.js';
import { renderGoals, writeGoals } from './bench-goals.js';
import { runStartupBench } from './bench-startup.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const RESULTS = join(ROOT, 'bench-results');

/** Runs a child in the repository; with `capture`, resolves with its stdout (stderr passes through either way). */
function child(command: string, args: readonly string[], capture = false): Promise<string> {
  return new Promise((done, reject) => {
    const running = spawn(command, args, { cwd: ROOT, stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] });
    const chunks: Buffer[] = [];
    running.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
    running.on('error', reject);
    running.on('close', (code) => (code === 0 ? done(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`${command} ${args.join(' ')} exited with ${code}`))));
  });
}

/** scripts/bench-cidl.ts runs its settings as child processes of its own, so it runs as one too. */
async function cidlBench(model: string, graphCache: string): Promise<void> {
  const args = ['--model', model, '--steps', '4', '--reps', '2', '--budget', '480M', '--graph-cache', graphCache, '--out', join(RESULTS, 'cidl.json')];
  await child(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'bench-cidl.ts'), ...args]);
}

async function must(args: readonly string[]): Promise<void> {
  const code = await cli(args);
  if (code !== 0) throw new Error(`ondevice-sora ${args.join(' ')} exited with ${code}`);
}

async function main(): Promise<void> {
  const started = Date.now();
  await mkdir(RESULTS, { recursive: true });
  console.log('== tiny model (models/tiny): 256x256, 17 frames, 30 steps, 3 sessions per configuration');
  await must(['bench', '--matrix', '--model', join(ROOT, 'models', 'tiny'), '--repeat', '3', '-o', 'bench-results/tiny', '--trace']);
  console.log('\n== the default model (models/shapes): 64x64, 51 frames, 30 steps, 3 sessions per configuration');
  await must(['bench', '--matrix', '--model', join(ROOT, 'models', 'shapes'), '--repeat', '3', '-o', 'bench-results/shapes']);
  console.log('\n== CI-DL against none on models/shapes, which fits its budget: 9 sessions each');
  await must(['bench', '--matrix', 'baseline,cidl', '--model', join(ROOT, 'models', 'shapes'), '--repeat', '9', '-o', 'bench-results/shapes-cidl']);
  console.log('\n== --preset fast against the baseline in eval (models/shapes, every held-out prompt)');
  const evaluation = await child(process.execPath, [join(ROOT, 'bin', 'ondevice-sora'), 'eval', '--configs', 'baseline,fast', '--json', '--quiet'], true);
  await writeFile(join(RESULTS, 'eval-fast.json'), evaluation);

  const scratch = await mkdtemp(join(tmpdir(), 'ondevice-sora-bench-synthetic-'));
  try {
    console.log('\n== paper-shaped synthetic model (hidden 1152, 2 block pairs): 128x128, 17 frames, 10 steps, 3 sessions each');
    const model = await paperWidthModel(scratch);
    if (model !== undefined) {
      await must([
        'bench',
        ...['--model', model, '--matrix', '--steps', '10', '--resolution', '128x128', '--repeat', '3'],
        ...['-o', 'bench-results/synthetic-opensora-1.2'],
      ]);
      console.log("\n== block efficiency at the paper's size (same model): 256x256, 68 frames, 2 steps, baseline and TDTM, 3 sessions each");
      await must([
        'bench',
        ...['--model', model, '--matrix', 'tdtm', '--steps', '2', '--resolution', '256x256', '--num-frames', '68', '--repeat', '3'],
        ...['-o', 'bench-results/paper-width-256'],
      ]);
      console.log('\n== CI-DL under a budget that streams the blocks (same model): 128x128, 4 steps, 480M, cold loads');
      await cidlBench(model, join(scratch, 'graph-cache'));
      console.log('\n== cost as the work grows (same model): 64², 128², 256² × 17, 68 frames, 4 steps per point (the first apart)');
      await must([
        'bench',
        ...['--scaling', '--model', model, '--scaling-sizes', '64,128,256', '--scaling-frames', '17,68'],
        ...['-o', 'bench-results/scaling-synthetic-opensora-1.2'],
      ]);
    }
    console.log('\n== the memory budget: peak RSS sampled from outside at three budgets per model');
    await runMemoryBench(standardCases(model), join(RESULTS, 'memory.json'));
    console.log('\n== weight compression: fp32, fp16 and int8 storage (models compress)');
    await runCompressionBench(compressionCases(model), join(RESULTS, 'compression.json'));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  console.log('\n== start-up: --help against a bare node');
  await runStartupBench(15, join(RESULTS, 'startup.json'));
  console.log("\n== issue 17's goals");
  console.log(renderGoals(await writeGoals(RESULTS, started)));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
