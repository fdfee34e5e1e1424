import type {
  Backend,
  BlockHandle,
  BlockSource,
  BlockStats,
  NamedTensors,
  ResidentTensor,
  RunInputs,
  RunOptions,
  RunOutputs,
  Tensor,
  TransferCounts,
} from '../../src/runtime/backend.js';
import { HostResidency } from '../../src/runtime/host-residency.js';

export interface FakeRun {
  readonly block: string;
  /** The inputs' data, resident ones resolved. */
  readonly inputs: NamedTensors;
  readonly options: RunOptions;
}

/**
 * Fake backend: each block is a JavaScript function, and every load and run is recorded. For tests of how the
 * pipeline drives blocks (order, shapes, chunking) independently of what real blocks compute. Resident tensors are
 * host tensors kept by id, as in the CoreML backend.
 */
export class FakeBackend implements Backend {
  readonly kind = 'onnx' as const;
  readonly device = 'fake';
  readonly runs: FakeRun[] = [];
  readonly loads: string[] = [];
  readonly unloads: string[] = [];
  readonly residency = new HostResidency();
  private nextId = 1;

  constructor(private readonly blocks: (name: string, inputs: NamedTensors) => NamedTensors) {}

  async load(block: BlockSource): Promise<BlockHandle> {
    this.loads.push(block.name);
    return { id: this.nextId++, name: block.name };
  }

  async run(handle: BlockHandle, inputs: RunInputs, options: RunOptions = {}): Promise<RunOutputs> {
    const resolved = this.residency.inputs(inputs);
    this.runs.push({ block: handle.name, inputs: resolved, options });
    return this.residency.outputs(inputs, this.blocks(handle.name, resolved), options);
  }

  async unload(handle: BlockHandle): Promise<void> {
    this.unloads.push(handle.name);
  }

  async upload(t: Tensor, options: { readonly transfer?: boolean } = {}): Promise<ResidentTensor> {
    return this.residency.upload(t, options.transfer === true);
  }

  async fetch(t: ResidentTensor): Promise<Tensor> {
    return this.residency.fetch(t);
  }

  async release(tensors: readonly ResidentTensor[]): Promise<void> {
    this.residency.release(tensors);
  }

  transfers(): TransferCounts {
    return this.residency.counts();
  }

  stats(): BlockStats[] {
    return [];
  }

  async close(): Promise<void> {}
}

/** Block sources for names that only a fake backend will see. */
export function fakeSources(names: readonly string[]): Map<string, BlockSource> {
  return new Map(names.map((name) => [name, { name, path: `/fake/${name}.onnx`, weightBytes: 0 }]));
}
