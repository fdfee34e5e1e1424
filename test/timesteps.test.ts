import { describe, expect, it } from 'vitest';
import { rawTimestep, samplingTimesteps, transformRatio } from '../src/pipeline/timesteps.js';

// Expected values are reference §B's formulas evaluated by hand (float64); the code works in float32, hence the
// tolerances.
const video68 = { numFrames: 68, width: 256, height: 256 };

describe('timestep transform ratio', () => {
  it('Open-Sora: √(H·W/512²)·√F_lat with F_lat from the real frame count', () => {
    expect(transformRatio('opensora', video68)).toBeCloseTo(0.5 * Math.sqrt(20), 6); // 2.2361
    expect(transformRatio('opensora', { ...video68, numFrames: 17 })).toBeCloseTo(0.5 * Math.sqrt(5), 6);
  });

  it('iOS app: always F_lat = 15 (its hard-coded 51 frames)', () => {
    expect(transformRatio('ios', video68)).toBeCloseTo(0.5 * Math.sqrt(15), 6); // 1.9365
    expect(transformRatio('ios', { numFrames: 68, width: 192, height: 192 })).toBeCloseTo(1.4523688, 6);
    expect(transformRatio('ios', { ...video68, numFrames: 17 })).toBe(transformRatio('ios', video68));
  });
});

describe('raw timesteps', () => {
  it('Open-Sora keeps (1 − i/N)·1000 unrounded', () => {
    expect(rawTimestep('opensora', 0, 30)).toBe(1000);
    expect(rawTimestep('opensora', 1, 30)).toBeCloseTo(966.6667, 3);
  });

  it('the app rounds to an integer, ties away from zero like Swift', () => {
    expect(rawTimestep('ios', 1, 30)).toBe(967);
    expect(rawTimestep('ios', 29, 30)).toBe(33);
    expect(rawTimestep('ios', 3, 16)).toBe(813); // 812.5 exactly
  });
});

describe('sampling timesteps', () => {
  it('Open-Sora, 30 steps, 68 frames 256²', () => {
    const t = samplingTimesteps(30, 'opensora', video68);
    expect(t).toHaveLength(30);
    expect(t[0]).toBe(1000);
    expect(t[1]).toBeCloseTo(984.81304, 3);
    expect(t[15]).toBeCloseTo(690.98301, 3);
    expect(t[29]).toBeCloseTo(71.58609, 3);
  });

  it('iOS, 30 steps, 68 frames 256²: rounded raw t and ratio 1.9365', () => {
    const t = samplingTimesteps(30, 'ios', video68);
    expect(t[0]).toBe(1000);
    expect(t[1]).toBeCloseTo(982.68251, 3);
    expect(t[15]).toBeCloseTo(659.45757, 3);
    expect(t[29]).toBeCloseTo(61.98852, 3);
  });

  it('is strictly decreasing, never reaches 0, and the transform only moves t up (ratio > 1)', () => {
    const t = samplingTimesteps(30, 'opensora', video68);
    for (let i = 1; i < t.length; i++) {
      expect(t[i]!).toBeLessThan(t[i - 1]!);
      expect(t[i]!).toBeGreaterThan(rawTimestep('opensora', i, 30));
    }
    expect(t[29]!).toBeGreaterThan(0);
  });
});
