/**
 * The blocks a runner has loaded, shared by the clients it serves one after the other: what keeps `serve` a
 * keep-loaded server. A block is claimed by each load and given back by each unload; a block whose claims are all
 * given back with `keep` (a job done with it, not a scheduler short of memory) stays loaded, idle, for the next job,
 * until the runner needs the memory for another load or a client asks for idle blocks to go.
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../logging.js';
import { blockSource, type Model } from '../model/manifest.js';
import type { ComputeUnits } from '../native/coreml.js';
import type { Backend, BlockHandle } from '../runtime/backend.js';
import type { MemoryMeter } from '../runtime/memory-meter.js';
import { RunnerFailure } from './runner-failure.js';

export interface LoadedBlock {
  readonly name: string;
  readonly key: string;
  readonly handle: BlockHandle;
  readonly weightBytes: number;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  claims: number;
  idleSince: number | null;
}

export interface Claim {
  readonly block: LoadedBlock;
  /** Loaded before this claim. */
  readonly cached: boolean;
  readonly ms: number;
}

/** Free memory a load leaves, below which idle blocks are unloaded first (oldest first). */
export const IDLE_RESERVE_BYTES = 512 * 2 ** 20;

export class LoadedBlocks {
  readonly #blocks = new Map<string, Promise<LoadedBlock>>();

  constructor(
    private readonly backend: Backend,
    private readonly model: Model | null,
    private readonly meter: MemoryMeter,
    private readonly logger: Logger,
  ) {}

  async claim(name: string, computeUnits: ComputeUnits | undefined): Promise<Claim> {
    const started = performance.now();
    const key = `${name}|${computeUnits ?? ''}`;
    const existing = this.#blocks.get(key);
    if (existing !== undefined) {
      const block = await existing;
      block.claims++;
      block.idleSince = null;
      return { block, cached: true, ms: performance.now() - started };
    }
    const loading = this.#load(name, key, computeUnits);
    this.#blocks.set(key, loading);
    loading.catch(() => this.#blocks.delete(key));
    return { block: await loading, cached: false, ms: performance.now() - started };
  }

  /** `keep`: the client is done with the block but the runner may keep it loaded for the next job. */
  async giveBack(block: LoadedBlock, keep: boolean): Promise<void> {
    block.claims = Math.max(0, block.claims - 1);
    if (block.claims > 0) return;
    if (keep) {
      block.idleSince = performance.now();
      return;
    }
    await this.#unload(block);
  }

  /** Unloads every block no client holds. */
  async dropIdle(): Promise<void> {
    for (const block of await this.#settled()) if (block.idleSince !== null) await this.#unload(block);
  }

  async idleNames(): Promise<string[]> {
    return (await this.#settled()).filter((block) => block.idleSince !== null).map((block) => block.name);
  }

  async #load(name: string, key: string, computeUnits: ComputeUnits | undefined): Promise<LoadedBlock> {
    const block = this.model?.blocks.find((candidate) => candidate.name === name);
    if (block === undefined) {
      const served = this.model === null ? 'the runner serves no model' : `model ${this.model.name} has no block named ${name}`;
      throw new RunnerFailure('no-such-block', served);
    }
    await this.#makeRoom(block.weightBytes);
    const source = { ...blockSource(block), ...(computeUnits !== undefined && { computeUnits }) };
    let handle: BlockHandle;
    try {
      handle = await this.backend.load(source);
    } catch (error) {
      throw new RunnerFailure('load-failed', errorMessage(error));
    }
    return { name, key, handle, weightBytes: block.weightBytes, inputs: source.inputs ?? [], outputs: source.outputs ?? [], claims: 1, idleSince: null };
  }

  /** Idle blocks go, oldest first, while what is available would drop below the reserve with the new block. */
  async #makeRoom(bytes: number): Promise<void> {
    const idle = (await this.#settled()).filter((block) => block.idleSince !== null).sort((a, b) => a.idleSince! - b.idleSince!);
    for (const block of idle) {
      if (this.meter.available() - bytes >= IDLE_RESERVE_BYTES) return;
      this.logger.info({ block: block.name }, 'unloading an idle block to make room');
      await this.#unload(block);
    }
  }

  async #unload(block: LoadedBlock): Promise<void> {
    this.#blocks.delete(block.key);
    await this.backend.unload(block.handle);
    this.meter.trim();
  }

  async #settled(): Promise<LoadedBlock[]> {
    const results = await Promise.allSettled(this.#blocks.values());
    return results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  }
}
