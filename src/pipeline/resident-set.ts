import type { Backend, ResidentTensor, RunOutputs, Tensor } from '../runtime/backend.js';
import { residentOutput } from './tensors.js';

/**
 * The resident tensors one piece of pipeline code made (a step's, a generation's), released together. Releasing a
 * tensor a run has consumed meanwhile is harmless: backends ignore ids they no longer hold.
 */
export class ResidentSet {
  #held: ResidentTensor[] = [];

  constructor(private readonly backend: Backend) {}

  /** `transfer`: the caller hands its buffer over (it must not use it again). */
  async upload(t: Tensor, transfer = false): Promise<ResidentTensor> {
    return this.add(await this.backend.upload(t, { transfer }));
  }

  add(t: ResidentTensor): ResidentTensor {
    this.#held.push(t);
    return t;
  }

  /** Kept outputs `names` of a run, added to the set. */
  kept<const Names extends readonly string[]>(outputs: RunOutputs, block: string, names: Names): Record<Names[number], ResidentTensor> {
    return Object.fromEntries(names.map((name) => [name, this.add(residentOutput(outputs, block, name))])) as Record<Names[number], ResidentTensor>;
  }

  async release(): Promise<void> {
    const held = this.#held;
    this.#held = [];
    await this.backend.release(held);
  }
}
