import { describe, expect, it } from 'vitest';
import {
  sample,
  type CfgVelocity,
  type Denoiser,
  type DenoiserStep,
  type StepInfo,
  type StepPolicy,
} from '../src/pipeline/sampler.js';
import { samplingTimesteps } from '../src/pipeline/timesteps.js';

/** Fake denoiser: returns fixed velocities and records every call, so the sampler's arithmetic can be checked. */
class FakeDenoiser implements Denoiser {
  readonly calls: { z: Float32Array; step: DenoiserStep }[] = [];
  constructor(private readonly velocity: (z: Float32Array, step: DenoiserStep) => CfgVelocity) {}
  async predict(z: Float32Array, step: DenoiserStep): Promise<CfgVelocity> {
    this.calls.push({ z: Float32Array.from(z), step });
    return this.velocity(z, step);
  }
}

const constant = (length: number, cond: number, uncond: number) => (): CfgVelocity => ({
  cond: new Float32Array(length).fill(cond),
  uncond: new Float32Array(length).fill(uncond),
});

const timesteps = samplingTimesteps(10, 'opensora', { numFrames: 17, width: 256, height: 256 });
const noise = Float32Array.of(0.5, -1.25, 2, 0);

describe('rectified-flow sampler (fake denoiser)', () => {
  it('calls the denoiser once per step with t_i and ST blocks by default', async () => {
    const denoiser = new FakeDenoiser(constant(4, 0, 0));
    const result = await sample(denoiser, noise, { timesteps, cfgScale: 7 });
    expect(result.evaluations).toBe(10);
    expect(result.leapStep).toBeNull();
    expect(denoiser.calls.map((c) => c.step.t)).toEqual([...timesteps]);
    expect(denoiser.calls.map((c) => c.step.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(denoiser.calls.every((c) => c.step.variant === 'st' && c.step.steps === 10)).toBe(true);
    expect(result.latent).toEqual(noise); // zero velocity: nothing moves
    expect(noise).toEqual(Float32Array.of(0.5, -1.25, 2, 0)); // the input is not modified
  });

  it('combines CFG as v_uncond + s·(v_cond − v_uncond) (conditional first)', async () => {
    const denoiser = new FakeDenoiser(constant(4, 3, 1));
    const result = await sample(denoiser, noise, { timesteps, cfgScale: 7 });
    // v = 1 + 7·(3 − 1) = 15 at every step; Σ dt = t_0/1000 = 1.
    for (let k = 0; k < 4; k++) expect(result.latent[k]).toBeCloseTo(noise[k]! + 15, 4);
  });

  it('uses dt = (t_i − t_{i+1})/1000, and t_{N−1}/1000 on the last step', async () => {
    const denoiser = new FakeDenoiser(constant(4, 1, 1));
    const result = await sample(denoiser, Float32Array.of(0, 0, 0, 0), { timesteps, cfgScale: 7 });
    const states = [...denoiser.calls.map((c) => c.z[0]!), result.latent[0]!];
    const dts = states.slice(1).map((z, i) => z - states[i]!);
    const expected = [...timesteps].map((t, i) => (i < 9 ? t - timesteps[i + 1]! : t) / 1000);
    dts.forEach((dt, i) => expect(dt).toBeCloseTo(expected[i]!, 6));
    expect(result.latent[0]).toBeCloseTo(1, 5);
  });

  it('applies Euler z ← z + v·dt with the velocity computed at the current z', async () => {
    // v = −z (cond = uncond): an exponential decay the Euler product reproduces step by step.
    const denoiser = new FakeDenoiser((z) => ({ cond: z.map((v) => -v), uncond: z.map((v) => -v) }));
    const result = await sample(denoiser, noise, { timesteps, cfgScale: 4 });
    let expected = 0.5;
    for (let i = 0; i < 10; i++) expected *= 1 - (i < 9 ? timesteps[i]! - timesteps[i + 1]! : timesteps[i]!) / 1000;
    expect(result.latent[0]).toBeCloseTo(expected, 6);
  });

  it('lets a policy choose TDTM blocks per step and leap early with dt = t_i/1000', async () => {
    const seen: number[][] = [];
    const testPolicy: StepPolicy = {
      name: 'test',
      blockVariant: (step: StepInfo) => (step.index < 2 ? 'tdtm' : 'st'),
      leapAfter: (step: StepInfo, drift: Float32Array) => {
        seen.push([...drift]);
        return step.index === 3;
      },
      record: () => ({ observed: seen.length }),
    };
    const denoiser = new FakeDenoiser(constant(4, 2, 1));
    const result = await sample(denoiser, Float32Array.of(0, 0, 0, 0), {
      timesteps,
      cfgScale: 2,
      policies: [testPolicy],
    });
    expect(denoiser.calls.map((c) => c.step.variant)).toEqual(['tdtm', 'tdtm', 'st', 'st']);
    // Each step also names the variants of the schedule's later steps, so the denoiser can load their blocks ahead.
    expect(denoiser.calls.map((c) => [...c.step.laterVariants!].sort())).toEqual([['st', 'tdtm'], ['st'], ['st'], ['st']]);
    expect(result.evaluations).toBe(4);
    expect(result.leapStep).toBe(3);
    expect(seen).toEqual([
      [3, 3, 3, 3],
      [3, 3, 3, 3],
      [3, 3, 3, 3],
      [3, 3, 3, 3],
    ]); // the CFG-combined drift: 1 + 2·(2 − 1)
    // Three regular steps plus the leap cover the whole way from t_0 = 1000 to 0.
    expect(result.latent[0]).toBeCloseTo(3, 5);
    expect(result.policies).toEqual({ test: { observed: 4 } });
  });

  it('reports progress after every step', async () => {
    const steps: number[] = [];
    await sample(new FakeDenoiser(constant(4, 0, 0)), noise, {
      timesteps,
      cfgScale: 7,
      onStep: (step) => steps.push(step.index),
    });
    expect(steps).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
