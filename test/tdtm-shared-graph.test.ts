/**
 * One exported graph serves a block pair's ST and TDTM names (scripts/sora/stdit3.py FrameMatrices): it reads the
 * variant from the attention mask's height and merges frames through matrices of 1, ½ and 0. Real ONNX Runtime
 * sessions: its outputs equal those of the separate ST and TDTM graphs of an older export bit for bit, at even and
 * odd frame counts, and the backend opens one session for both names.
 */
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockSource, loadModel, type Model } from '../src/model/manifest.js';
import { blockDiagonalMask } from '../src/pipeline/attention-mask.js';
import { float32Tensor, int64Scalar } from '../src/pipeline/tensors.js';
import { hostOutputs } from '../src/runtime/backend.js';
import { OnnxBackend } from '../src/runtime/onnx-backend.js';
import { ROOT } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';

const SPACE = 12;
const CAPTION = 5;

let dir: string;
let model: Model;
let backend: OnnxBackend;

beforeAll(async () => {
  dir = await tempDir('sora-shared-graph-');
  await cp(join(ROOT, 'models', 'tiny'), dir, { recursive: true });
  for (const file of ['stdit3_ST_1.onnx', 'stdit3_TDTM_1.onnx']) {
    await cp(join(ROOT, 'test', 'fixtures', 'separate-variant-graphs', file), join(dir, 'stdit', file));
  }
  model = await loadModel(dir);
  backend = new OnnxBackend();
});

afterAll(async () => {
  await backend.close();
  await rm(dir, { recursive: true, force: true });
});

function varied(count: number, seed: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => Math.sin(i * 12.9898 + seed) * 1.5);
}

function blockInputs(frames: number, merged: boolean) {
  const channels = model.architecture.stdit.hidden_size;
  const tokens = frames * SPACE;
  const rows = merged ? Math.floor(frames / 2) * SPACE : tokens;
  return {
    x: float32Tensor([2, tokens, channels], varied(2 * tokens * channels, frames)),
    y: float32Tensor([1, 2 * CAPTION, channels], varied(2 * CAPTION * channels, 1)),
    t_mlp: float32Tensor([2, 6 * channels], varied(12 * channels, 2)),
    attn: blockDiagonalMask(rows, CAPTION),
    T: int64Scalar(frames),
  };
}

describe('a block pair exported as one graph', () => {
  it('lists ST_i and TDTM_i with the same files', () => {
    const st = model.blocks.find((block) => block.name === 'stdit3_ST_0')!;
    const tdtm = model.blocks.find((block) => block.name === 'stdit3_TDTM_0')!;
    expect(tdtm.files.map((file) => file.relativePath)).toEqual(['stdit/stdit3_block_0.onnx', 'stdit/stdit3_block_0.data']);
    expect(st.files.map((file) => file.relativePath)).toEqual(tdtm.files.map((file) => file.relativePath));
  });

  it.each([2, 3, 4, 5])('gives the separate ST and TDTM graphs\' outputs bit for bit (T = %i)', async (frames) => {
    const shared = await backend.load(blockSource(model.blocks.find((block) => block.name === 'stdit3_ST_1')!));
    for (const [file, merged] of [['stdit3_ST_1.onnx', false], ['stdit3_TDTM_1.onnx', true]] as const) {
      const separate = await backend.load({ name: file, path: join(dir, 'stdit', file), weightBytes: 0 });
      const inputs = blockInputs(frames, merged);
      const expected = hostOutputs(await backend.run(separate, inputs)).output!.data as Float32Array;
      const actual = hostOutputs(await backend.run(shared, inputs)).output!.data as Float32Array;
      expect(actual.length).toBe(expected.length);
      expect(Buffer.from(actual.buffer).equals(Buffer.from(expected.buffer)), `${file}, T = ${frames}`).toBe(true);
      await backend.unload(separate);
    }
    await backend.unload(shared);
  });

  it('loads once for both names: the second load opens no session', async () => {
    const fresh = new OnnxBackend();
    try {
      const names = ['stdit3_ST_2', 'stdit3_TDTM_2'];
      const handles = [];
      for (const name of names) handles.push(await fresh.load(blockSource(model.blocks.find((block) => block.name === name)!)));
      const loads = fresh.stats().map((stats) => [stats.name, stats.loadMs > 0]);
      expect(loads).toEqual([['stdit3_ST_2', true], ['stdit3_TDTM_2', false]]);
      const out = hostOutputs(await fresh.run(handles[1]!, blockInputs(4, true))).output!;
      expect(out.dims).toEqual([2, 4 * SPACE, model.architecture.stdit.hidden_size]);
    } finally {
      await fresh.close();
    }
  });
});
