import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { sample, type StepPolicy } from '../src/pipeline/sampler.js';
import { blockReusePolicy } from '../src/policies/block-reuse.js';
import { PRESETS, stepPolicies } from '../src/policies/presets.js';
import { modulatedInput, relativeL1, stepCachePolicy } from '../src/policies/step-cache.js';
import { RecordingProvider, stditProvider, tinyRunner, tinyTimesteps, tinyStditSuite } from './helpers/tiny-stdit.js';

const silent = pino({ level: 'silent' });
const STEPS = 12;

describe('the step cache indicator', () => {
  it('relative L1 is Σ|a − b| / Σ|b|, and 0 against all zeros', () => {
    expect(relativeL1(Float32Array.of(1, -3), Float32Array.of(2, -2))).toBeCloseTo(2 / 4, 12);
    expect(relativeL1(Float32Array.of(1, 1), Float32Array.of(0, 0))).toBe(0);
  });

  it('modulates each CFG row with its own shift and scale after a per-token LayerNorm', () => {
    // Two rows of one token, C = 2: LayerNorm maps (1, 3) and (5, 7) to ≈ (−1, 1).
    const channels = 2;
    const tMlp = new Float32Array(2 * 6 * channels);
    tMlp.set([10, 20, 1, 0], 0); // row 0: shift (10, 20), scale (1, 0)
    tMlp.set([0, 0, -1, 3], 6 * channels); // row 1: shift 0, scale (−1, 3)
    const out = modulatedInput({ x: Float32Array.of(1, 3, 5, 7), tMlp, channels });
    expect([...out].map((v) => Number(v.toFixed(4)) + 0)).toEqual([8, 21, 0, 4]);
  });
});

describe('step caching on the real tiny model (ONNX blocks)', () => {
  const suite = tinyStditSuite();

  async function run(policies: StepPolicy[], steps = STEPS) {
    const provider = new RecordingProvider(stditProvider(suite.tiny, suite.backend));
    try {
      const { runner, noise } = tinyRunner(suite.tiny, provider);
      const result = await sample(runner, noise, { timesteps: tinyTimesteps(suite.tiny, steps), cfgScale: suite.tiny.cfgScale, policies });
      return { result, blocks: blockRunsPerStep(provider.runs.map((entry) => entry.block)) };
    } finally {
      await provider.close();
    }
  }

  /** For each evaluation (one part1 run), the STDiT block pairs that ran before its part2. */
  function blockRunsPerStep(blocks: string[]): string[][] {
    const steps: string[][] = [];
    for (const block of blocks) {
      if (block === 'stdit3_part1') steps.push([]);
      else if (/_(ST|TDTM)_\d+$/.test(block)) steps.at(-1)!.push(block);
    }
    return steps;
  }

  const depth = (): number => suite.tiny.model.architecture.stdit.depth;
  const ranBlocks = (blocks: string[][]): number[] => blocks.flatMap((pairs, step) => (pairs.length > 0 ? [step] : []));

  it('threshold 0 never reuses and gives the baseline latent bit for bit', async () => {
    const baseline = await run([]);
    const cached = await run([stepCachePolicy(0)]);
    expect(cached.result.reusedBlocks).toBe(0);
    expect(cached.result.policies['step-cache']).toMatchObject({ threshold: 0, reusedSteps: [] });
    expect(cached.blocks).toEqual(baseline.blocks);
    expect(cached.result.latent).toEqual(baseline.result.latent);
  });

  it('skips exactly the block runs of the steps it reports reusing, all pairs at once, and never step 0 or the last', async () => {
    const { result, blocks } = await run([stepCachePolicy(0.5)]);
    const record = result.policies['step-cache'] as { reusedSteps: number[]; changes: { step: number; change: number }[] };
    expect(record.reusedSteps.length).toBeGreaterThan(0);
    expect(result.reusedBlocks).toBe(record.reusedSteps.length);
    expect(blocks).toHaveLength(STEPS);
    const skipped = blocks.flatMap((pairs, step) => (pairs.length === 0 ? [step] : []));
    expect(skipped).toEqual(record.reusedSteps);
    expect(skipped).not.toContain(0);
    expect(skipped).not.toContain(STEPS - 1);
    for (const step of ranBlocks(blocks)) expect(blocks[step]).toHaveLength(depth());
    expect(record.changes.map((entry) => entry.step)).toEqual([...Array(STEPS - 2).keys()].map((k) => k + 1));
    expect(result.latent.every(Number.isFinite)).toBe(true);
  });

  it('the same seed and threshold give the same latent twice', async () => {
    const first = await run([stepCachePolicy(0.5)]);
    const second = await run([stepCachePolicy(0.5)]);
    expect(second.result.policies).toEqual(first.result.policies);
    expect(second.result.latent).toEqual(first.result.latent);
  });

  it('--reuse-every 3 runs the blocks at steps 0, 3, 6, 9 and the last step only', async () => {
    const { result, blocks } = await run([blockReusePolicy(3)]);
    expect(ranBlocks(blocks)).toEqual([0, 3, 6, 9, 11]);
    expect(result.reusedBlocks).toBe(STEPS - 5);
    expect(result.policies['block-reuse']).toEqual({ every: 3, reusedSteps: [1, 2, 4, 5, 7, 8, 10] });
  });

  it('a reused step changes the result: reuse 2 differs from the baseline but stays close to it', async () => {
    const baseline = await run([]);
    const reused = await run([blockReusePolicy(2)]);
    expect(reused.result.latent).not.toEqual(baseline.result.latent);
    const a = baseline.result.latent;
    const b = reused.result.latent;
    let dot = 0;
    let aa = 0;
    let bb = 0;
    for (let k = 0; k < a.length; k++) {
      dot += a[k]! * b[k]!;
      aa += a[k]! ** 2;
      bb += b[k]! ** 2;
    }
    expect(dot / Math.sqrt(aa * bb)).toBeGreaterThan(0.5);
  });

  it('the step cache composes with LPL and TDTM: TDTM blocks early, the leap at 15, cached steps skip whole stacks', async () => {
    const policies = stepPolicies({ ...PRESETS.fast, tdtm: 15 }, 5, silent);
    expect(policies.map((policy) => policy.name)).toEqual(['tdtm', 'lpl', 'step-cache']);
    const { result, blocks } = await run(policies, 30);
    expect(result.evaluations).toBe(16);
    expect(result.leapStep).toBe(15);
    const reused = (result.policies['step-cache'] as { reusedSteps: number[] }).reusedSteps;
    expect(ranBlocks(blocks)).toEqual([...Array(16).keys()].filter((step) => !reused.includes(step)));
    for (const step of ranBlocks(blocks)) {
      expect(blocks[step]![0]).toBe(step < 15 ? 'stdit3_TDTM_0' : 'stdit3_ST_0');
    }
  });
});
