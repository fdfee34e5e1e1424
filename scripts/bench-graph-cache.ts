/**
 * Load time of a model's STDiT blocks with and without the optimised-graph cache (not a test): every block loaded and
 * unloaded in a fresh ONNX backend, the two ways taking turns so that a change in the machine's load hits both alike.
 * The first cached pass writes the entries into a temporary cache folder (timed apart); the folder is removed at the
 * end. Writes bench-results/graph-cache.json.
 *
 *   npx tsx scripts/bench-graph-cache.ts --model DIR [--reps 5] [--out FILE]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { summarize } from '../src/bench/report.js';
import { blockSource, loadModel } from '../src/model/manifest.js';
import type { BlockSource } from '../src/runtime/backend.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function loadAll(blocks: readonly BlockSource[], graphCacheDir?: string): Promise<number> {
  const backend = new OnnxBackend(graphCacheDir === undefined ? {} : { graphCacheDir });
  try {
    await backend.ready(); // ORT's start in the workers is not a block's load
    const started = performance.now();
    for (const block of blocks) await backend.unload(await backend.load(block));
    return performance.now() - started;
  } finally {
    await backend.close();
  }
}

const median = (values: readonly number[]): number => summarize(values).medianMs;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { model: { type: 'string' }, reps: { type: 'string', default: '5' }, out: { type: 'string', default: 'bench-results/graph-cache.json' } },
  });
  if (values.model === undefined) throw new Error('--model DIR is required');
  const reps = Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps: must be a positive integer');
  const model = await loadModel(resolve(values.model));
  const blocks = model.blocks.filter((block) => block.component === 'stdit').map(blockSource);
  const cache = await mkdtemp(join(tmpdir(), 'ondevice-sora-graph-cache-'));
  try {
    const writeMs = await loadAll(blocks, cache);
    const plain: number[] = [];
    const cached: number[] = [];
    for (let rep = 0; rep < reps; rep++) {
      plain.push(await loadAll(blocks));
      cached.push(await loadAll(blocks, cache));
    }
    const report = {
      benchmark: 'graph-cache',
      createdAt: new Date().toISOString(),
      model: model.name,
      blocks: blocks.length,
      firstLoadWritingMs: writeMs,
      plainMs: plain,
      cachedMs: cached,
      ratio: median(cached) / median(plain),
    };
    const out = resolve(ROOT, values.out);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(
      `${blocks.length} STDiT blocks: plain ${median(plain).toFixed(0)} ms, from the cache ${median(cached).toFixed(0)} ms ` +
        `(${report.ratio.toFixed(2)}×; medians of ${reps}); writing the cache ${writeMs.toFixed(0)} ms; wrote ${out}`,
    );
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
