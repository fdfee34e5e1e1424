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

/**
 * The MLP's second projection at the paper's width (4C = 4608 → C = 1152) over 4096 tokens. Not the first (1152 →
 * 4608), though its FLOPs are the same: that one's 75 MB output is a fresh allocation every run, and faulting it in
 * held the measured roof 23 % lower (104 vs 128 GFLOP/s on the 2-vCPU machine), below what ST blocks reached.
 */
export const PAPER_GEMM: MatMulShape = { m: 4096, k: 4608, n: 1152 };

/** Milliseconds of `runs` timed runs, after one untimed run that allocates the arena and prepacks the weights. */
export async function timeGemm(backend: Backend, shape: MatMulShape = PAPER_GEMM, runs = 3): Promise<number[]> {
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
      await once();
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) samples.push(await once());
      return samples;
    } finally {
      await backend.release([a]);
      await backend.unload(handle);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The roof from run times: FLOPs ÷ the median (the roof efficiencies are taken against), and ÷ the fastest run
 * (what the machine reached with the least interference: on a shared machine the median is well below it).
 */
export function gemmRoof(shape: MatMulShape, samples: readonly number[]): GemmRoof {
  const run = summarize(samples);
  const flops = 2 * shape.m * shape.k * shape.n;
  return {
    shape: [shape.m, shape.k, shape.n],
    flops,
    run,
    flopsPerSecond: Math.round(flops / (run.medianMs / 1000)),
    peakFlopsPerSecond: Math.round(flops / (run.minMs / 1000)),
  };
}

export async function measureGemmRoof(backend: Backend, shape: MatMulShape = PAPER_GEMM, runs = 3): Promise<GemmRoof> {
  return gemmRoof(shape, await timeGemm(backend, shape, runs));
}
