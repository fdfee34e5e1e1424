import type { Backend, BlockHandle, BlockSource, BlockStats, NamedTensors } from '../../src/runtime/backend.js';

export interface FakeRun {
  readonly block: string;
  readonly inputs: NamedTensors;
}

/**
 * Fake backend: each block is a JavaScript function, and every load and run is recorded. For tests of how the
 * pipeline drives blocks (order, shapes, chunking) independently of what real blocks compute.
 */
export class FakeBackend implements Backend {
  readonly kind = 'onnx' as const;
  readonly device = 'fake';
  readonly runs: FakeRun[] = [];
  readonly loads: string[] = [];
  readonly unloads: string[] = [];
  private nextId = 1;

  constructor(private readonly blocks: (name: string, inputs: NamedTensors) => NamedTensors) {}

  async load(block: BlockSource): Promise<BlockHandle> {
    this.loads.push(block.name);
    return { id: this.nextId++, name: block.name };
  }

  async run(handle: BlockHandle, inputs: NamedTensors): Promise<NamedTensors> {
    this.runs.push({ block: handle.name, inputs });
    return this.blocks(handle.name, inputs);
  }

  async unload(handle: BlockHandle): Promise<void> {
    this.unloads.push(handle.name);
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
