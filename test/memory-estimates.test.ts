/** The budget check that decides whether a component's blocks stream (and are mapped), on the tiny model's manifest. */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../src/model/manifest.js';
import { budgetReserve } from '../src/pipeline/memory-budget.js';
import { budgetHoldsComponent, distinctWeightBytes } from '../src/pipeline/memory-estimates.js';
import { ROOT } from './helpers/cli.js';

let model: Model;
beforeAll(async () => {
  model = await loadModel(join(ROOT, 'models', 'tiny'));
});

describe('budgetHoldsComponent', () => {
  it('asks for twice the component\'s weights, a block pair\'s shared graph counted once, beside what is in use', () => {
    const stdit = model.blocks.filter((block) => block.component === 'stdit');
    const weights = distinctWeightBytes(stdit);
    expect(weights).toBeLessThan(stdit.reduce((sum, block) => sum + block.weightBytes, 0));
    const inUse = 100 * 2 ** 20;
    // The smallest budget that holds: inUse + 2 × weights + 2 × (16 MiB + 2 % of the budget) ≤ budget.
    const edge = Math.ceil((inUse + 2 * weights + 2 * 16 * 2 ** 20) / 0.96);
    expect(edge - inUse - 2 * weights - 2 * budgetReserve(edge)).toBeGreaterThanOrEqual(0);
    expect(budgetHoldsComponent(edge + 64, inUse, model, 'stdit')).toBe(true);
    expect(budgetHoldsComponent(edge - 2 ** 20, inUse, model, 'stdit')).toBe(false);
    expect(budgetHoldsComponent(edge + 64, inUse + 2 ** 20, model, 'stdit')).toBe(false);
  });
});
