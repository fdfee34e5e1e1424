/**
 * Block providers on real ONNX Runtime sessions of the tiny model's blocks, every load recorded: ResidentBlockProvider,
 * and CI-DL's scheduler as the pipeline drives it between generations.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../src/model/manifest.js';
import { componentSources, ResidentBlockProvider } from '../src/pipeline/block-provider.js';
import { CidlScheduler, scheduledBlocks } from '../src/pipeline/ci-dl.js';
import { recordedBackend, Timeline } from '../src/pipeline/timeline.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { ROOT } from './helpers/cli.js';

let model: Model;
let onnx: OnnxBackend;

beforeAll(async () => {
  model = await loadModel(join(ROOT, 'models', 'tiny'));
  onnx = new OnnxBackend();
});
afterAll(() => onnx.close());

function provider(): { provider: ResidentBlockProvider; timeline: Timeline } {
  const timeline = new Timeline();
  return { provider: new ResidentBlockProvider(recordedBackend(onnx, timeline), componentSources(model, 'stdit')), timeline };
}

const loads = (timeline: Timeline, block?: string) =>
  timeline.toJSON().events.filter((event) => event.kind === 'load' && (block === undefined || event.block === block));

describe('ResidentBlockProvider', () => {
  it('starts loading the block named next while the caller holds this one; each block loads once', async () => {
    const { provider: blocks, timeline } = provider();
    await blocks.acquire('stdit3_part1', 'stdit3_ST_0');
    const askedAt = timeline.now();
    await blocks.acquire('stdit3_ST_0', 'stdit3_ST_1');
    const [st0] = loads(timeline, 'stdit3_ST_0');
    expect(st0!.startMs).toBeLessThan(askedAt); // begun by the acquire before, not by this one
    await blocks.acquire('stdit3_ST_1');
    expect(loads(timeline).map((event) => event.block).sort()).toEqual(['stdit3_ST_0', 'stdit3_ST_1', 'stdit3_part1']);

    await blocks.close();
    const unloads = timeline.toJSON().events.filter((event) => event.kind === 'unload').map((event) => event.block);
    expect(unloads.sort()).toEqual(['stdit3_ST_0', 'stdit3_ST_1', 'stdit3_part1']);
  });

  it('preload starts every named block loading at once', async () => {
    const { provider: blocks, timeline } = provider();
    const names = ['stdit3_part1', 'stdit3_ST_0', 'stdit3_ST_1', 'stdit3_part2'];
    blocks.preload(names);
    for (const name of names) await blocks.acquire(name);
    const events = loads(timeline);
    expect(events.map((event) => event.block).sort()).toEqual([...names].sort());
    // All asked of the backend before the first was done (the backend spreads them over its workers).
    const firstDone = Math.min(...events.map((event) => event.endMs));
    expect(events.every((event) => event.startMs < firstDone)).toBe(true);
    await blocks.close();
  });

  it('loads no block ahead without a next, or for a next the model does not have', async () => {
    const { provider: blocks, timeline } = provider();
    await blocks.acquire('stdit3_part2');
    await blocks.acquire('stdit3_part1', 'stdit3_ST_99');
    expect(loads(timeline).map((event) => event.block).sort()).toEqual(['stdit3_part1', 'stdit3_part2']);
    await expect(blocks.acquire('stdit3_ST_99')).rejects.toMatchObject({ code: 'MODEL', message: expect.stringContaining('stdit3_ST_99') });
    await blocks.close();
  });

  it('closing while a block loads ahead waits for it and unloads it too', async () => {
    const { provider: blocks, timeline } = provider();
    await blocks.acquire('stdit3_part2', 'stdit3_TDTM_0');
    await blocks.close(); // the TDTM_0 load is very likely still under way here
    const events = timeline.toJSON().events;
    expect(events.filter((event) => event.kind === 'load').map((event) => event.block).sort()).toEqual(['stdit3_TDTM_0', 'stdit3_part2']);
    expect(events.filter((event) => event.kind === 'unload').map((event) => event.block).sort()).toEqual(['stdit3_TDTM_0', 'stdit3_part2']);
  });
});

describe('CidlScheduler under a budget that holds the whole component', () => {
  it('keeps the temporal VAE parts a spatial step did not use, so the next generation loads nothing', async () => {
    const timeline = new Timeline();
    const vae = scheduledBlocks(model, 'vae');
    const scheduler = new CidlScheduler(recordedBackend(onnx, timeline), vae, {
      label: 'vae',
      budget: { bytes: 8 * 2 ** 30, source: 'test' },
      concurrent: true,
      dynamicLoading: true,
    });
    const temporal = vae.map((block) => block.source.name).filter((name) => name.startsWith('vae_temporal'));
    const spatial = vae.map((block) => block.source.name).filter((name) => name.startsWith('vae_spatial'));
    // As the decoder acquires them: the temporal parts once, then the spatial parts once per group of frames.
    const generation = async (): Promise<void> => {
      for (const pass of [temporal, spatial, spatial, spatial]) {
        for (const [i, name] of pass.entries()) {
          await scheduler.acquire(name, pass[i + 1]);
          await scheduler.release(name);
        }
      }
    };
    await generation();
    await generation();
    const report = scheduler.report();
    expect(report.loads).toEqual(Object.fromEntries(vae.map((block) => [block.source.name, 1])));
    expect([...report.resident].sort()).toEqual([...temporal, ...spatial].sort());
    await scheduler.close();
    expect(loads(timeline)).toHaveLength(vae.length);
  });
});

describe('CidlScheduler.preload', () => {
  const names = ['stdit3_part1', 'stdit3_ST_0', 'stdit3_ST_1', 'stdit3_part2'];
  const scheduler = (budget: number) => {
    const timeline = new Timeline();
    const blocks = new CidlScheduler(recordedBackend(onnx, timeline), scheduledBlocks(model, 'stdit'), {
      label: 'stdit',
      budget: { bytes: budget, source: 'test' },
      concurrent: true,
      dynamicLoading: true,
      modelWeightBytes: model.blocks.reduce((sum, block) => sum + block.weightBytes, 0),
    });
    return { blocks, timeline };
  };

  it('under a budget that holds the component amply, starts every named block loading before the first is done', async () => {
    const { blocks, timeline } = scheduler(8 * 2 ** 30);
    blocks.preload(names);
    for (const name of names) {
      await blocks.acquire(name);
      await blocks.release(name);
    }
    const events = loads(timeline);
    expect(events.map((event) => event.block).sort()).toEqual([...names].sort());
    const firstDone = Math.min(...events.map((event) => event.endMs));
    expect(events.every((event) => event.startMs < firstDone)).toBe(true);
    await blocks.close();
  });

  it('under a budget that binds, loads nothing ahead of its own plan', async () => {
    const { blocks, timeline } = scheduler(process.memoryUsage.rss() + 64 * 2 ** 20);
    blocks.preload(names);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(loads(timeline)).toEqual([]);
    await blocks.close();
  });
});
