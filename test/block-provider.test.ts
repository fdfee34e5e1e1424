/** ResidentBlockProvider on real ONNX Runtime sessions of the tiny model's STDiT blocks, every load recorded. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../src/model/manifest.js';
import { componentSources, ResidentBlockProvider } from '../src/pipeline/block-provider.js';
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
    await blocks.release('stdit3_part1');
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
