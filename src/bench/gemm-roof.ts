/**
 * The machine's fp32 GEMM roof as the blocks see it: a MatMul-only ONNX graph loaded and run through the same
 * backend (the same worker, session options and thread settings) as the benched blocks, so a block's efficiency
 * (achieved FLOP/s ÷ roof) compares like with like. Like a block run, each timed run includes the Node binding's
 * copy of the output out of ONNX Runtime; the output itself stays in the worker (`keep`), as block outputs do.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, ResidentTensor } from '../runtime/backend.js';
import { matmulModel, type MatMulShape } from './matmul-graph.js';
import { summarize, type GemmRoof } from './report.js';

/** An MLP projection at the paper's width (C = 1152, 4C hidden) over 4096 tokens. */
export const PAPER_GEMM: MatMulShape = { m: 4096, k: 1152, n: 4608 };

export async function measureGemmRoof(backend: Backend, shape: MatMulShape = PAPER_GEMM, runs = 5): Promise<GemmRoof> {
  const dir = await mkdtemp(join(tmpdir(), 'ondevice-sora-gemm-roof-'));
  try {
    const path = join(dir, 'matmul.onnx');
    await writeFile(path, matmulModel(shape));
    const handle = await backend.load({ name: 'gemm-roof', path, weightBytes: shape.k * shape.n * 4 });
    const a = await backend.upload({ dtype: 'float32', dims: [shape.m, shape.k], data: new Float32Array(shape.m * shape.k).fill(0.5) });
    const once = async (): Promise<number> => {
      const start = performance.now();
      const outputs = await backend.run(handle, { a }, { keep: ['y'] });
      const elapsed = performance.now() - start;
      await backend.release(Object.values(outputs) as ResidentTensor[]);
      return elapsed;
    };
    try {
      await once(); // the first run allocates the arena and the prepacked weights
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) samples.push(await once());
      const stats = summarize(samples);
      const flops = 2 * shape.m * shape.k * shape.n;
      return { shape: [shape.m, shape.k, shape.n], flops, run: stats, flopsPerSecond: Math.round(flops / (stats.medianMs / 1000)) };
    } finally {
      await backend.release([a]);
      await backend.unload(handle);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
