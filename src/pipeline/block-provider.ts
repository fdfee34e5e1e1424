import { SoraError } from '../errors.js';
import type { Component } from '../model/contract.js';
import { blockSource, type Model } from '../model/manifest.js';
import type { Backend, BlockHandle, BlockSource, RunInputs, RunOptions, RunOutputs } from '../runtime/backend.js';

/**
 * How pipeline code gets at blocks. A caller acquires a block by contract name right before running it and releases
 * it right after; what happens in between (keep it resident, unload it, load the next one early) is the provider's
 * policy, so a memory-budgeted scheduler can replace the simple provider without changing any pipeline code.
 */
export interface BlockProvider {
  readonly backend: Backend;
  /** `next` names the block the caller will acquire after this one, so a scheduler can load it meanwhile. */
  acquire(name: string, next?: string): Promise<BlockHandle>;
  /**
   * The blocks the caller is about to acquire, in order: a provider that keeps them all may start loading them now,
   * side by side. A scheduler under a memory budget keeps to its own plan and ignores it.
   */
  preload?(names: readonly string[]): void;
  release(name: string): Promise<void>;
  /** Unloads every block this provider loaded. */
  close(): Promise<void>;
}

/**
 * Acquire → run → release: the one way pipeline code runs a block. `options.keep` leaves outputs where they were
 * computed, for the next block to take (see Backend).
 */
export async function runBlock(
  provider: BlockProvider,
  name: string,
  inputs: RunInputs,
  next?: string,
  options?: RunOptions,
): Promise<RunOutputs> {
  const handle = await provider.acquire(name, next);
  try {
    return await provider.backend.run(handle, inputs, options);
  } finally {
    await provider.release(name);
  }
}

/**
 * Loads each block on first use and keeps it until close(): right for models that fit in memory. What the caller
 * says it will need (preload, or the block named next when acquiring one) starts loading at once, so on the first
 * pass loads run side by side in the backend's workers and beside the runs, instead of each after the run before.
 */
export class ResidentBlockProvider implements BlockProvider {
  private readonly loaded = new Map<string, Promise<BlockHandle>>();

  constructor(
    readonly backend: Backend,
    private readonly sources: ReadonlyMap<string, BlockSource>,
  ) {}

  async acquire(name: string, next?: string): Promise<BlockHandle> {
    const handle = this.load(name);
    if (next !== undefined) this.preload([next]);
    return handle;
  }

  preload(names: readonly string[]): void {
    for (const name of names) {
      // A failure surfaces when the block is acquired; until then nobody awaits it.
      if (this.sources.has(name) && !this.loaded.has(name)) this.load(name).catch(() => undefined);
    }
  }

  private load(name: string): Promise<BlockHandle> {
    let handle = this.loaded.get(name);
    if (handle === undefined) {
      const source = this.sources.get(name);
      if (source === undefined) return Promise.reject(new SoraError('MODEL', `the model has no block named ${name}`));
      handle = this.backend.load(source);
      this.loaded.set(name, handle);
    }
    return handle;
  }

  async release(): Promise<void> {}

  /** The blocks are done with, not unloaded for memory: a runner serving many jobs may keep them loaded. */
  async close(): Promise<void> {
    const handles = [...this.loaded.values()];
    this.loaded.clear();
    for (const handle of await Promise.allSettled(handles)) {
      if (handle.status === 'fulfilled') await this.backend.unload(handle.value, { mayKeep: true });
    }
  }
}

/** The blocks of one component (T5, STDiT or VAE) by contract name: what a provider for that component serves. */
export function componentSources(model: Model, component: Component): Map<string, BlockSource> {
  const blocks = model.blocks.filter((block) => block.component === component);
  return new Map(blocks.map((block) => [block.name, blockSource(block)]));
}
