import { describe, expect, it } from 'vitest';
import { sample, type CfgVelocity, type Denoiser, type DenoiserStep } from '../src/pipeline/sampler.js';
import { cosineSimilarity, firstCheckedStep, lplPolicy } from '../src/policies/lpl.js';
import {
  driftObserver,
  ObservedDenoiser,
  stditProvider,
  tinyRunner,
  tinyTimesteps,
  tinyStditSuite,
} from './helpers/tiny-stdit.js';

const f = Math.fround;
const STEPS = 30;

const suite = tinyStditSuite();

describe('fixed LPL on the real tiny model (ONNX blocks)', () => {
  const timesteps = () => tinyTimesteps(suite.tiny, STEPS);

  /** A plain 30-step run, keeping every z the denoiser saw and every CFG-combined drift. */
  async function plainRun() {
    const provider = stditProvider(suite.tiny, suite.backend);
    try {
      const { runner, noise } = tinyRunner(suite.tiny, provider);
      const denoiser = new ObservedDenoiser(runner);
      const observer = driftObserver();
      const result = await sample(denoiser, noise, { timesteps: timesteps(), cfgScale: suite.tiny.cfgScale, policies: [observer] });
      return { result, states: denoiser.inputs, drifts: observer.drifts };
    } finally {
      await provider.close();
    }
  }

  async function leapRun(step: number) {
    const provider = stditProvider(suite.tiny, suite.backend);
    try {
      const { runner, noise } = tinyRunner(suite.tiny, provider);
      const counting = new ObservedDenoiser(runner);
      const lpl = lplPolicy({ mode: 'fixed', step });
      const result = await sample(counting, noise, { timesteps: timesteps(), cfgScale: suite.tiny.cfgScale, policies: [lpl] });
      return { result, calls: counting.steps };
    } finally {
      await provider.close();
    }
  }

  it('--lpl 15 of 30: the final latent is z_15 + v_15·t_15/1000 of the plain run, after exactly 16 denoiser calls', async () => {
    const plain = await plainRun();
    const { result, calls } = await leapRun(15);

    expect(calls).toHaveLength(16);
    expect(calls.map((call) => call.t)).toEqual([...timesteps().subarray(0, 16)]);
    expect(result.evaluations).toBe(16);
    expect(result.leapStep).toBe(15);
    expect(result.policies.lpl).toEqual({ mode: 'fixed', step: 15, leapStep: 15, evaluations: 16 });

    // The same float32 arithmetic as the sampler's Euler update, with dt = t_15/1000.
    const zN = plain.states[15]!;
    const vN = plain.drifts[15]!;
    const dt = f(f(timesteps()[15]!) / 1000);
    const expected = zN.map((z, k) => f(z + f(vN[k]! * dt)));
    expect(result.latent).toEqual(expected);
    expect(result.latent).not.toEqual(plain.result.latent); // the leap is a different (cheaper) path
  });

  it('--lpl N with N ≥ steps − 1 changes nothing: same latent as the plain run, every step evaluated, no leap', async () => {
    const plain = await plainRun();
    for (const step of [STEPS - 1, STEPS, 100]) {
      const { result, calls } = await leapRun(step);
      expect(calls).toHaveLength(STEPS);
      expect(result.leapStep).toBeNull();
      expect(result.policies.lpl).toMatchObject({ leapStep: null, evaluations: STEPS });
      expect(result.latent).toEqual(plain.result.latent);
    }
  });
});

/**
 * Fake denoiser: its drifts turn in a plane spanned by two orthonormal latent-sized vectors, by a prescribed angle
 * per step, so the cosine similarity of consecutive drifts is exactly the one the test prescribes.
 */
class FakeTurningDenoiser implements Denoiser {
  calls = 0;
  private angle = 0;

  constructor(
    private readonly basis: readonly [Float32Array, Float32Array, Float32Array?],
    private readonly turn: (step: number) => number,
  ) {}

  async predict(_z: Float32Array, step: DenoiserStep): Promise<CfgVelocity> {
    this.calls++;
    if (step.index > 0) this.angle += this.turn(step.index);
    const [a, b, fixed] = this.basis;
    const drift = a.map((value, k) => Math.cos(this.angle) * value + Math.sin(this.angle) * b[k]! + (fixed?.[k] ?? 0));
    // cond = uncond: the CFG-combined drift is the drift itself, whatever the scale.
    return { cond: drift, uncond: Float32Array.from(drift) };
  }
}

/** Latent [4, 3, 4, 4]; `k` indexes it channel-major, frame, row, column. */
const LENGTH = 4 * 3 * 4 * 4;
const FRAME = 4 * 4;
const inSliceOfChannel0Frame0 = (k: number) => k < FRAME;

/** Unit vectors on disjoint supports are orthonormal; `support` picks the entries each one may use. */
function unitVectors(support: (k: number) => boolean): [Float32Array, Float32Array] {
  const indices = Array.from({ length: LENGTH }, (_, k) => k).filter(support);
  const half = indices.length / 2;
  const a = new Float32Array(LENGTH);
  const b = new Float32Array(LENGTH);
  indices.forEach((k, i) => ((i < half ? a : b)[k] = 1 / Math.sqrt(half)));
  return [a, b];
}

/** Similarity s at step i ⇔ the drift turns by acos(s) between steps i − 1 and i. */
const similarityTurn = (similarity: (step: number) => number) => (step: number) => Math.acos(similarity(step));

async function runAuto(
  similarity: (step: number) => number,
  options: { steps?: number; tolerance?: number; patience?: number } = {},
) {
  const { steps = STEPS, tolerance = 1e-4, patience = 3 } = options;
  const denoiser = new FakeTurningDenoiser(unitVectors(() => true), similarityTurn(similarity));
  const timesteps = new Float32Array(steps).map((_, i) => 1000 * (1 - i / steps));
  const policy = lplPolicy({ mode: 'auto', tolerance, patience });
  const result = await sample(denoiser, new Float32Array(LENGTH), { timesteps, cfgScale: 7, policies: [policy] });
  const record = result.policies.lpl as { leapStep: number | null; evaluations: number; checkedFrom: number; similarities: { step: number; similarity: number }[] };
  expect(denoiser.calls).toBe(result.evaluations);
  expect(record.evaluations).toBe(result.evaluations);
  expect(record.leapStep).toBe(result.leapStep);
  if (result.leapStep !== null) expect(result.leapStep + 1).toBeGreaterThanOrEqual(steps / 2);
  return { result, record };
}

describe('dynamic LPL (`--lpl auto`) on a fake denoiser with prescribed drift similarities', () => {
  it('checks from the step that completes half the evaluations (14 of 30, 5 of 11)', () => {
    expect(firstCheckedStep(30)).toBe(14);
    expect(firstCheckedStep(11)).toBe(5);
    expect(firstCheckedStep(1)).toBe(0);
  });

  it('leaps patience steps after similarity stops improving: rising until step 21, flat after → leap at 24', async () => {
    const { result, record } = await runAuto((step) => 0.9 + 0.004 * Math.min(step, 21));
    expect(result.leapStep).toBe(24);
    expect(result.evaluations).toBe(25);
    expect(record.checkedFrom).toBe(14);
    // The trace is every consecutive-drift similarity from step 1 to the leap, as prescribed.
    expect(record.similarities.map((entry) => entry.step)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    record.similarities.forEach(({ step, similarity }) => expect(similarity).toBeCloseTo(0.9 + 0.004 * Math.min(step, 21), 5));
  });

  it('never leaps before half the steps, even when the drift is straight from the first step', async () => {
    expect((await runAuto(() => 0.95)).result.leapStep).toBe(17); // improves best 0 → 0.95 at 14, then 15, 16, 17 fail
    expect((await runAuto(() => 0.95, { patience: 1 })).result.leapStep).toBe(15);
    expect((await runAuto(() => 0.95, { steps: 11 })).result.leapStep).toBe(8); // checks from 5
  });

  it('starts the best similarity at 0: drifts that keep reversing never improve it and leap after patience checks', async () => {
    // cos = −0.5 at every step: steps 14, 15, 16 all fail.
    expect((await runAuto(() => -0.5)).result.leapStep).toBe(16);
  });

  it('counts a gain of at most the tolerance as no improvement (tolerance 1e-4; --lpl-tolerance 1e-5 keeps going)', async () => {
    // Each check is compared with the best so far, which failed checks leave alone: gains of 3e-5, 6e-5, 9e-5.
    const slowlyStraighter = (step: number) => 0.9 + 3e-5 * step;
    expect((await runAuto(slowlyStraighter)).result.leapStep).toBe(17);
    const { result } = await runAuto(slowlyStraighter, { tolerance: 1e-5 });
    expect(result.leapStep).toBeNull();
    expect(result.evaluations).toBe(STEPS);
  });

  it('--lpl-patience 5 waits five checks without gain', async () => {
    expect((await runAuto((step) => 0.9 + 0.004 * Math.min(step, 21), { patience: 5 })).result.leapStep).toBe(26);
  });

  it('compares the whole drift: channel 0 of frame 0 never changes, the rest keeps straightening → no leap', async () => {
    // The authors' slice (channel 0, frame 0) would see cosine 1 at every step and leap at step 17; the whole
    // tensor's similarity (1 + cos θ_i)/2 rises by more than the tolerance at every step, so it never leaps.
    const [a, b] = unitVectors((k) => !inSliceOfChannel0Frame0(k));
    const fixed = new Float32Array(LENGTH).map((_, k) => (inSliceOfChannel0Frame0(k) ? 1 / Math.sqrt(FRAME) : 0));
    const denoiser = new FakeTurningDenoiser([a, b, fixed], (step) => 1.2 - 0.035 * step);
    const timesteps = new Float32Array(STEPS).map((_, i) => 1000 * (1 - i / STEPS));
    const policy = lplPolicy({ mode: 'auto', tolerance: 1e-4, patience: 3 });
    const result = await sample(denoiser, new Float32Array(LENGTH), { timesteps, cfgScale: 7, policies: [policy] });
    expect(result.leapStep).toBeNull();
    const { similarities } = result.policies.lpl as { similarities: { step: number; similarity: number }[] };
    similarities.forEach(({ step, similarity }) => expect(similarity).toBeCloseTo((1 + Math.cos(1.2 - 0.035 * step)) / 2, 5));
  });
});

describe('cosine similarity of drifts', () => {
  it('is 1 for parallel, −1 for opposite, 0 for orthogonal vectors, and 0 when one is zero', () => {
    expect(cosineSimilarity(Float32Array.of(1, 2, 3), Float32Array.of(2, 4, 6))).toBeCloseTo(1, 12);
    expect(cosineSimilarity(Float32Array.of(1, 2, 3), Float32Array.of(-1, -2, -3))).toBeCloseTo(-1, 12);
    expect(cosineSimilarity(Float32Array.of(1, 0), Float32Array.of(0, 5))).toBe(0);
    expect(cosineSimilarity(Float32Array.of(0, 0), Float32Array.of(1, 5))).toBe(0);
  });
});
