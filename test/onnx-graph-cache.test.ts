/**
 * The optimised-graph cache on real ONNX Runtime sessions of the tiny model: every golden block written to a fresh
 * cache, then made from it in another backend, with outputs identical to bit to sessions made without the cache.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockSource, loadModel, type Model, type ModelBlock } from '../src/model/manifest.js';
import { hostOutputs, type Backend, type NamedTensors } from '../src/runtime/backend.js';
import { cacheWritable, GRAPH_FILE, pruneGraphCache, WEIGHTS_FILE } from '../src/runtime/onnx-graph-cache.js';
import { GRAPH_CACHE_AUTO_BYTES } from '../src/pipeline/graph-cache-default.js';
import { usesGraphCache } from '../src/pipeline/graph-cache-choice.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { assertBuilt, cli, expectOneLineError } from './helpers/cli.js';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { readGolden, TINY_MODEL, type Golden } from './helpers/golden.js';
import { tempDir } from './helpers/model-folder.js';

const GOLDENS = ['stdit3_ST_0', 'stdit3_TDTM_1.even', 'stdit3_part1', 't5block-layer0', 'vae_spatial_part2', 'vae_temporal_part2_1'];

let model: Model;
let cacheDir: string;
let goldens: Golden[];

beforeAll(async () => {
  model = await loadModel(TINY_MODEL);
  cacheDir = await tempDir('sora-graph-cache-');
  goldens = await Promise.all(GOLDENS.map((name) => readGolden(`${name}.json`)));
});
afterAll(() => rm(cacheDir, { recursive: true, force: true }));

const blockOf = (name: string): ModelBlock => model.blocks.find((block) => block.name === name)!;

async function runOnce(backend: Backend, golden: Golden): Promise<{ outputs: NamedTensors; cache: string | undefined }> {
  const handle = await backend.load(blockSource(blockOf(golden.block)));
  try {
    const outputs = hostOutputs(await backend.run(handle, golden.inputs));
    return { outputs, cache: backend.stats().find((stats) => stats.name === golden.block)?.graphCache };
  } finally {
    await backend.unload(handle);
  }
}

async function withBackend<T>(options: ConstructorParameters<typeof OnnxBackend>[0], work: (backend: Backend) => Promise<T>): Promise<T> {
  const backend = new OnnxBackend(options);
  try {
    return await work(backend);
  } finally {
    await backend.close();
  }
}

describe('ONNX optimised-graph cache', () => {
  it('writes an entry per block on first load; another backend makes the same sessions from it, outputs identical to bit', async () => {
    const plain = await withBackend({}, async (backend) => {
      const out = [];
      for (const golden of goldens) out.push(await runOnce(backend, golden));
      return out;
    });
    expect(plain.every((run) => run.cache === undefined)).toBe(true);

    const written = await withBackend({ graphCacheDir: cacheDir }, async (backend) => {
      const out = [];
      for (const golden of goldens) {
        // Until its entry exists a block reads the manifest's files; from then on the entry's (CI-DL's page cache work).
        expect(backend.blockFiles!(blockSource(blockOf(golden.block)))).toBeUndefined();
        out.push(await runOnce(backend, golden));
        const files = backend.blockFiles!(blockSource(blockOf(golden.block)))!;
        expect(files.map((file) => file.path.startsWith(cacheDir))).toEqual([true, true]);
        expect(files.every((file) => file.bytes > 0)).toBe(true);
      }
      return out;
    });
    expect(written.map((run) => run.cache)).toEqual(GOLDENS.map(() => 'written'));
    const entries = await readdir(cacheDir);
    expect(entries).toHaveLength(GOLDENS.length); // no temporary folder left behind
    for (const entry of entries) expect((await readdir(join(cacheDir, entry))).sort()).toEqual([WEIGHTS_FILE, GRAPH_FILE].sort());

    const cached = await withBackend({ graphCacheDir: cacheDir }, async (backend) => {
      const out = [];
      for (const golden of goldens) out.push(await runOnce(backend, golden));
      return out;
    });
    expect(cached.map((run) => run.cache)).toEqual(GOLDENS.map(() => 'hit'));
    for (const [i, golden] of goldens.entries()) {
      for (const name of Object.keys(golden.outputs)) {
        expect(Buffer.from(cached[i]!.outputs[name]!.data.buffer), `${golden.block}: ${name}`).toEqual(
          Buffer.from(plain[i]!.outputs[name]!.data.buffer),
        );
        expect(Buffer.from(written[i]!.outputs[name]!.data.buffer)).toEqual(Buffer.from(plain[i]!.outputs[name]!.data.buffer));
      }
    }

    // Pruning by age: used just now, kept at 30 days; 31 days on, every entry goes.
    expect((await pruneGraphCache(cacheDir)).removed).toEqual([]);
    const later = await pruneGraphCache(cacheDir, { now: new Date(Date.now() + 31 * 24 * 3600 * 1000) });
    expect(later.removed).toHaveLength(GOLDENS.length);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('a damaged entry: the block is optimised afresh from its own graph, with the same outputs', async () => {
    const golden = goldens[0]!;
    const dir = await tempDir('sora-graph-cache-damaged-');
    try {
      await withBackend({ graphCacheDir: dir }, (backend) => runOnce(backend, golden));
      const [entry] = await readdir(dir);
      const graph = join(dir, entry!, GRAPH_FILE);
      await writeFile(graph, (await readFile(graph)).subarray(0, 100));
      const expected = await withBackend({}, (backend) => runOnce(backend, golden));
      const damaged = await withBackend({ graphCacheDir: dir }, (backend) => runOnce(backend, golden));
      expect(damaged.cache).toBe('failed');
      for (const name of Object.keys(golden.outputs)) {
        expect(Buffer.from(damaged.outputs[name]!.data.buffer)).toEqual(Buffer.from(expected.outputs[name]!.data.buffer));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('caches nothing for a block whose manifest records no sha256', async () => {
    const dir = await tempDir('sora-graph-cache-unhashed-');
    try {
      const block = blockOf(goldens[0]!.block);
      const { contentKey: _, ...unhashed } = blockSource(block);
      await withBackend({ graphCacheDir: dir }, async (backend) => {
        const handle = await backend.load(unhashed);
        expect(backend.stats()[0]!.graphCache).toBeUndefined();
        await backend.unload(handle);
      });
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('whether a job uses the graph cache', () => {
  // Only what modelWeightBytes reads of a model: its blocks' graphs and weight sizes.
  const modelOf = (...weightBytes: number[]) =>
    ({ blocks: weightBytes.map((bytes, i) => ({ graph: { path: `/m/b${i}.onnx` }, weightBytes: bytes })) }) as unknown as Model;

  it('the flags decide when given; without them, a model up to GRAPH_CACHE_AUTO_BYTES uses it and a larger one does not', () => {
    const small = modelOf(GRAPH_CACHE_AUTO_BYTES / 2, GRAPH_CACHE_AUTO_BYTES / 2);
    const large = modelOf(GRAPH_CACHE_AUTO_BYTES / 2, GRAPH_CACHE_AUTO_BYTES / 2 + 1);
    expect(usesGraphCache(undefined, small)).toBe(true);
    expect(usesGraphCache(undefined, large)).toBe(false);
    expect(usesGraphCache(true, large)).toBe(true);
    expect(usesGraphCache(false, small)).toBe(false);
  });

  it('a cache folder that cannot be made is not writable (the automatic choice then leaves the cache off)', async () => {
    const root = await tempDir('sora-graph-cache-writable-');
    try {
      await writeFile(join(root, 'file'), 'not a folder');
      expect(cacheWritable(join(root, 'file', 'onnx-graphs'))).toBe(false);
      expect(cacheWritable(join(root, 'cache', 'onnx-graphs'))).toBe(true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('generate --graph-cache', () => {
  const outcomes = (stderr: string): string[] =>
    stderr
      .split('\n')
      .filter((line) => line.includes('"block loaded"'))
      .map((line) => (JSON.parse(line) as { graphCache?: string }).graphCache ?? 'none');

  it('fills the cache folder on the first run (by default for a small model); the next run loads every block from it, with the same frames', async () => {
    assertBuilt();
    const root = await tempDir('sora-graph-cache-cli-');
    try {
      const env = { XDG_CACHE_HOME: join(root, 'cache') };
      const run = (name: string, ...flags: string[]) =>
        cli(['--log-level', 'debug', 'generate', 'a cat', '-o', join(root, name), '--model', TINY_MODEL, '--steps', '2', '--resolution', '128x128', '--seed', '5', '--format', 'frames', ...flags], env);
      const plain = await run('plain', '--no-graph-cache');
      expect(plain.code, plain.stderr).toBe(0);
      expect(new Set(outcomes(plain.stderr))).toEqual(new Set(['none']));
      expect(existsSync(join(root, 'cache', 'ondevice-sora', 'onnx-graphs'))).toBe(false);
      // No flag: models/tiny is far below GRAPH_CACHE_AUTO_BYTES.
      const first = await run('first');
      expect(first.code, first.stderr).toBe(0);
      expect(new Set(outcomes(first.stderr))).toEqual(new Set(['written']));
      const entries = await readdir(join(root, 'cache', 'ondevice-sora', 'onnx-graphs'));
      expect(entries).toHaveLength(outcomes(first.stderr).length);
      const second = await run('second', '--graph-cache');
      expect(second.code, second.stderr).toBe(0);
      expect(new Set(outcomes(second.stderr))).toEqual(new Set(['hit']));
      const frames = async (name: string) => Promise.all((await readdir(join(root, name))).sort().filter((f) => f.endsWith('.png')).map((f) => readFile(join(root, name, f))));
      const expected = await frames('plain');
      expect(expected.length).toBeGreaterThan(0);
      expect(await frames('first')).toEqual(expected);
      expect(await frames('second')).toEqual(expected);

      // doctor reports the cache; prune keeps recent entries, and with --all removes them, plus what a crashed
      // writer left, and nothing that is not the cache's.
      const graphs = join(root, 'cache', 'ondevice-sora', 'onnx-graphs');
      const doctor = JSON.parse((await cli(['doctor', '--json'], env)).stdout) as { checks: { name: string; detail: string }[] };
      expect(doctor.checks.find((check) => check.name === 'onnx-graph-cache')?.detail).toContain(`${entries.length} optimised graphs`);
      const kept = await cli(['models', 'cache', 'prune', '--json'], env);
      expect(kept.code, kept.stderr).toBe(0);
      expect(JSON.parse(kept.stdout).onnxGraphs).toMatchObject({ removed: [], kept: { entries: entries.length } });
      const crashed = `${'a'.repeat(32)}.999999999-0123abcd.tmp`;
      await mkdir(join(graphs, crashed));
      await writeFile(join(graphs, 'notes.txt'), 'mine');
      const all = await cli(['models', 'cache', 'prune', '--all', '--json'], env);
      expect(all.code, all.stderr).toBe(0);
      expect(JSON.parse(all.stdout).onnxGraphs.removed).toHaveLength(entries.length);
      expect(await readdir(graphs)).toEqual(['notes.txt']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('refuses --graph-cache with a remote backend, naming the flag', async () => {
    const result = await cli(['generate', 'a cat', '-o', 'never.mp4', '--graph-cache', '--connect', '127.0.0.1:9']);
    expectOneLineError(result, ERROR_EXIT_CODES.USAGE, '--graph-cache');
  });
});
