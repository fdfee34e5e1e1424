/**
 * Residency for a backend whose blocks read host memory directly (CoreML in this process, test fakes): a resident
 * tensor is a host tensor kept under an id. Nothing moves when one is passed on; the counts show what the pipeline
 * hands over as host tensors (inputs it passes, outputs it takes back), the same measure every backend reports.
 */
import { SoraError } from '../errors.js';
import {
  isResident,
  tensorByteLength,
  type NamedTensors,
  type ResidentTensor,
  type RunInputs,
  type RunOptions,
  type RunOutputs,
  type Tensor,
  type TransferCounts,
} from './backend.js';

export class HostResidency {
  readonly #tensors = new Map<number, Tensor>();
  #next = 1;
  #toRuntime = 0;
  #toHost = 0;

  /** The caller may change its buffer afterwards unless it gives it away (`transfer`), so it is copied otherwise. */
  upload(t: Tensor, transfer = false): ResidentTensor {
    this.#toRuntime += tensorByteLength(t);
    return this.#keep(transfer ? t : { ...t, data: t.data.slice() });
  }

  fetch(resident: ResidentTensor): Tensor {
    const t = this.#get(resident);
    this.#toHost += tensorByteLength(t);
    return { ...t, data: t.data.slice() };
  }

  release(tensors: readonly ResidentTensor[]): void {
    for (const t of tensors) this.#tensors.delete(t.resident);
  }

  /** The run's inputs as host tensors; host inputs count as handed over. */
  inputs(inputs: RunInputs): NamedTensors {
    const resolved: Record<string, Tensor> = {};
    for (const [name, value] of Object.entries(inputs)) {
      if (isResident(value)) {
        resolved[name] = this.#get(value);
      } else {
        this.#toRuntime += tensorByteLength(value);
        resolved[name] = value;
      }
    }
    return resolved;
  }

  /** After a run: consumed inputs released, kept outputs made resident, the others counted as returned. */
  outputs(inputs: RunInputs, outputs: NamedTensors, options: RunOptions): RunOutputs {
    for (const name of options.consume ?? []) {
      const input = inputs[name];
      if (input !== undefined && isResident(input)) this.#tensors.delete(input.resident);
    }
    const keep = new Set(options.keep ?? []);
    const result: Record<string, Tensor | ResidentTensor> = {};
    for (const [name, value] of Object.entries(outputs)) {
      if (keep.has(name)) {
        result[name] = this.#keep(value);
      } else {
        this.#toHost += tensorByteLength(value);
        result[name] = value;
      }
    }
    return result;
  }

  counts(): TransferCounts {
    return { toRuntime: this.#toRuntime, toHost: this.#toHost, withinRuntime: 0, copiedWithinRuntime: 0 };
  }

  /** Resident tensors and their bytes, e.g. to check that a job released what it kept. */
  held(): { readonly count: number; readonly bytes: number } {
    let bytes = 0;
    for (const t of this.#tensors.values()) bytes += tensorByteLength(t);
    return { count: this.#tensors.size, bytes };
  }

  clear(): void {
    this.#tensors.clear();
  }

  #keep(t: Tensor): ResidentTensor {
    const id = this.#next++;
    this.#tensors.set(id, t);
    return { resident: id, dtype: t.dtype, dims: [...t.dims] };
  }

  #get(resident: ResidentTensor): Tensor {
    const t = this.#tensors.get(resident.resident);
    if (t === undefined) throw new SoraError('INTERNAL', `resident tensor ${resident.resident} was released or never existed`);
    return t;
  }
}
