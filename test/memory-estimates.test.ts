/** The budget checks that choose how blocks are set up under CI-DL (session.ts), on the tiny model's manifest. */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../src/model/manifest.js';
import { budgetReserve } from '../src/pipeline/memory-budget.js';
import { budgetHoldsEachComponent, distinctWeightBytes } from '../src/pipeline/memory-estimates.js';
import { ROOT } from './helpers/cli.js';

let model: Model;
beforeAll(async () => {
  model = await loadModel(join(ROOT, 'models', 'tiny'));
});

describe('budgetHoldsEachComponent', () => {
  it('asks for twice the largest component\'s weights, a block pair\'s shared graph counted once, beside what is in use', () => {
    const stdit = model.blocks.filter((block) => block.component === 'stdit');
    const largest = Math.max(...(['t5', 'stdit', 'vae'] as const).map((c) => distinctWeightBytes(model.blocks.filter((b) => b.component === c))));
    expect(distinctWeightBytes(stdit)).toBeLessThan(stdit.reduce((sum, block) => sum + block.weightBytes, 0));
    const inUse = 100 * 2 ** 20;
    // The smallest budget that holds: inUse + 2 × largest + 2 × (16 MiB + 2 % of the budget) ≤ budget.
    const edge = Math.ceil((inUse + 2 * largest + 2 * 16 * 2 ** 20) / 0.96);
    expect(edge - inUse - 2 * largest - 2 * budgetReserve(edge)).toBeGreaterThanOrEqual(0);
    expect(budgetHoldsEachComponent(edge + 64, inUse, model)).toBe(true);
    expect(budgetHoldsEachComponent(edge - 2 ** 20, inUse, model)).toBe(false);
    expect(budgetHoldsEachComponent(edge + 64, inUse + 2 ** 20, model)).toBe(false);
  });
});
