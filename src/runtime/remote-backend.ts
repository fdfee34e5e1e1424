/**
 * The Backend on a block runner reached over a byte stream (`serve` over TCP or a Unix socket, the iPhone app
 * through usbmuxd): blocks load and run in the runner's process, resident tensors are the runner's handles, and
 * the memory a budget caps is the runner's, as its replies report it (docs/runner-protocol.md).
 */
import type { Duplex } from 'node:stream';
import { SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { ComputeUnits } from '../native/coreml.js';
import { nameMismatch } from '../model/contract.js';
import {
  isResident,
  type Backend,
  type BlockHandle,
  type BlockSource,
  type BlockStats,
  type ResidentTensor,
  type RunInputs,
  type RunOptions,
  type RunOutputs,
  type Tensor,
  type TransferCounts,
  type UnloadOptions,
} from './backend.js';
import type { MemoryMeter } from './memory-meter.js';
import { RunnerConnection } from './runner-connection.js';
import { HELLO_LIMITS } from './runner-frames.js';
import { PROTOCOL_VERSION, type Reply, type RunnerMemory, type WireValue } from './runner-messages.js';
import { VERSION } from '../version.js';

export interface RemoteBackendOptions {
  /** Names the runner in messages: "runner at 127.0.0.1:7315". */
  readonly where: string;
  readonly token?: string;
  /**
   * Blocks the runner keeps loaded from earlier jobs are unloaded at once, and this client's unloads free their
   * memory: for a memory budget (which caps the runner's memory) and for cold measurements (bench).
   */
  readonly dropIdle?: boolean;
  /** Compute units for every block (`--compute-units`), over each block's own. */
  readonly computeUnits?: ComputeUnits;
  readonly logger?: Logger;
}

/** The memory of the runner's process, from the numbers each reply carries. */
class RunnerMeter implements MemoryMeter {
  #inUse = 0;
  #windowPeak = 0;
  #available = 0;

  constructor(readonly where: string) {}

  update(memory: RunnerMemory): void {
    this.#inUse = memory.inUse;
    this.#available = memory.available;
    this.#windowPeak = Math.max(this.#windowPeak, memory.peak, memory.inUse);
  }

  inUse(): number {
    return this.#inUse;
  }

  takeWindowPeak(): number {
    const peak = Math.max(this.#windowPeak, this.#inUse);
    this.#windowPeak = this.#inUse;
    return peak;
  }

  available(): number {
    return this.#available;
  }

  /** The runner hands freed memory back itself after each unload. */
  trim(): void {}
}

interface RemoteBlockStats extends BlockStats {
  /** The runner had the block loaded already (kept from an earlier job). */
  readonly cached: boolean;
  readonly runMs: number[];
}

interface RemoteBlock {
  readonly source: BlockSource;
  readonly stats: RemoteBlockStats;
}

export class RemoteBackend implements Backend {
  readonly kind = 'remote' as const;
  readonly device: string;
  readonly memory: RunnerMeter;
  /** The runner's hello. */
  readonly runner: Reply<'hello'>;
  readonly #connection: RunnerConnection;
  readonly #options: RemoteBackendOptions;
  readonly #blocks = new Map<number, RemoteBlock>();
  readonly #stats: RemoteBlock['stats'][] = [];
  /** Handles of the resident tensors this client holds. */
  readonly #held = new Set<number>();
  #dropIdle = false;

  private constructor(connection: RunnerConnection, hello: Reply<'hello'>, meter: RunnerMeter, options: RemoteBackendOptions) {
    this.#connection = connection;
    this.runner = hello;
    this.memory = meter;
    this.#options = options;
    const { device } = hello;
    this.device = `${hello.backend} on ${device.name} (${device.os} ${device.osVersion}, ${device.arch}), ${options.where}`;
  }

  /** Says hello on `stream` and returns the backend once the runner has accepted it. */
  static async connect(stream: Duplex, options: RemoteBackendOptions): Promise<RemoteBackend> {
    const connection = new RunnerConnection(stream, options.where, HELLO_LIMITS);
    const meter = new RunnerMeter(options.where);
    connection.onMemory = (memory) => meter.update(memory);
    try {
      const fields = { versions: [PROTOCOL_VERSION], client: `ondevice-sora ${VERSION}`, ...(options.token !== undefined && { token: options.token }) };
      const { reply } = await connection.request('hello', fields, [], 'hello');
      connection.setLimits(reply.limits);
      const backend = new RemoteBackend(connection, reply, meter, options);
      if (options.dropIdle === true) await backend.dropIdleBlocks();
      options.logger?.debug({ runner: reply.runner, device: reply.device, backend: reply.backend }, 'connected to a runner');
      return backend;
    } catch (error) {
      connection.end();
      throw error;
    }
  }

  async load(block: BlockSource): Promise<BlockHandle> {
    const units = this.#options.computeUnits ?? block.computeUnits;
    const fields = { name: block.name, ...(units !== undefined && { computeUnits: units }) };
    const { reply } = await this.#connection.request('load', fields, [], `load of ${block.name}`);
    const handle = { id: reply.block, name: block.name };
    for (const [side, expected, actual] of [
      ['inputs', block.inputs, reply.inputs],
      ['outputs', block.outputs, reply.outputs],
    ] as const) {
      const mismatch = expected === undefined ? undefined : nameMismatch(expected, actual);
      if (mismatch === undefined) continue;
      await this.unload(handle);
      throw new SoraError('MODEL', `${this.#options.where}: block ${block.name}: the runner's ${side} do not match the contract: ${mismatch}`);
    }
    const stats = { name: block.name, loadMs: reply.ms, runMs: [], weightBytes: block.weightBytes, cached: reply.cached };
    this.#stats.push(stats);
    this.#blocks.set(handle.id, { source: block, stats });
    return handle;
  }

  async run(handle: BlockHandle, inputs: RunInputs, options: RunOptions = {}): Promise<RunOutputs> {
    const block = this.#block(handle);
    const tensors: Tensor[] = [];
    const wire: Record<string, WireValue> = {};
    for (const [name, value] of Object.entries(inputs)) {
      if (isResident(value)) {
        wire[name] = { handle: value.resident };
      } else {
        wire[name] = { tensor: tensors.length };
        tensors.push(value);
      }
    }
    const consume = options.consume ?? [];
    const fields = { block: handle.id, inputs: wire, keep: options.keep ?? [], consume };
    try {
      const { reply, tensors: returned } = await this.#connection.request('run', fields, tensors, `run of ${block.source.name}`);
      block.stats.runMs.push(reply.ms);
      return this.#outputs(reply.outputs, returned, block.source.name);
    } finally {
      for (const name of consume) {
        const value = inputs[name];
        if (value !== undefined && isResident(value)) this.#held.delete(value.resident);
      }
    }
  }

  async unload(handle: BlockHandle, options: UnloadOptions = {}): Promise<void> {
    const block = this.#block(handle);
    this.#blocks.delete(handle.id);
    const keep = options.mayKeep === true && !this.#dropIdle;
    await this.#connection.request('unload', { block: handle.id, keep }, [], `unload of ${block.source.name}`);
  }

  async upload(t: Tensor): Promise<ResidentTensor> {
    const { reply } = await this.#connection.request('put', {}, [t], 'upload');
    const handle = reply.handles[0]!;
    this.#held.add(handle);
    return { resident: handle, dtype: t.dtype, dims: [...t.dims] };
  }

  async fetch(t: ResidentTensor): Promise<Tensor> {
    const { tensors } = await this.#connection.request('fetch', { handles: [t.resident] }, [], 'fetch');
    const fetched = tensors[0];
    if (fetched === undefined) throw new SoraError('BACKEND', `${this.#options.where}: fetch: the reply has no tensor`);
    return fetched;
  }

  async release(tensors: readonly ResidentTensor[]): Promise<void> {
    const handles = [...new Set(tensors.map((t) => t.resident))].filter((handle) => this.#held.has(handle));
    if (handles.length === 0 || this.#connection.failed) return;
    for (const handle of handles) this.#held.delete(handle);
    await this.#connection.request('release', { handles }, [], 'release').catch((error: unknown) => {
      if (!this.#connection.failed) throw error;
    });
  }

  transfers(): TransferCounts {
    return { toRuntime: this.#connection.sentBytes, toHost: this.#connection.receivedBytes, withinRuntime: 0, copiedWithinRuntime: 0 };
  }

  stats(): RemoteBlockStats[] {
    return this.#stats.map((stats) => ({ ...stats, runMs: [...stats.runMs] }));
  }

  /**
   * Unloads the blocks the runner kept from earlier jobs, and from now on this client's unloads free memory: for a
   * memory budget, which caps the runner's memory.
   */
  async dropIdleBlocks(): Promise<void> {
    this.#dropIdle = true;
    await this.#connection.request('unload', { idle: true }, [], 'unloading idle blocks');
  }

  /** The runner's own account: this client's tensors, its blocks and the idle ones, its memory. */
  async runnerStats(): Promise<Reply<'stats'>> {
    return (await this.#connection.request('stats', {}, [], 'stats')).reply;
  }

  /** Requests waiting and bytes held for a partial reply: both 0 once the connection has failed. */
  pending(): { readonly requests: number; readonly bufferedBytes: number } {
    return { requests: this.#connection.pending, bufferedBytes: this.#connection.buffered };
  }

  /** Says goodbye (the runner frees this client's tensors and keeps its blocks loaded) and ends the connection. */
  async close(): Promise<void> {
    if (!this.#connection.failed) await this.#connection.request('close', {}, [], 'close').catch(() => undefined);
    this.#connection.end();
    this.#blocks.clear();
    this.#held.clear();
  }

  #outputs(outputs: Reply<'run'>['outputs'], returned: readonly Tensor[], block: string): RunOutputs {
    const result: Record<string, Tensor | ResidentTensor> = {};
    for (const [name, value] of Object.entries(outputs)) {
      if ('dtype' in value) {
        this.#held.add(value.handle);
        result[name] = { resident: value.handle, dtype: value.dtype, dims: value.dims };
        continue;
      }
      const t = 'tensor' in value ? returned[value.tensor] : undefined;
      if (t === undefined) throw new SoraError('BACKEND', `${this.#options.where}: run of ${block}: output ${name} is not in the reply`);
      result[name] = t;
    }
    return result;
  }

  #block(handle: BlockHandle): RemoteBlock {
    const block = this.#blocks.get(handle.id);
    if (block === undefined) throw new SoraError('BACKEND', `block ${handle.name} is not loaded (handle ${handle.id})`);
    return block;
  }
}
