import { SoraError } from '../errors.js';
import { contractName, type BlockKind } from '../model/contract.js';
import type { NamedTensors, Tensor } from '../runtime/backend.js';
import { tensor } from '../runtime/tensor.js';

export type Float32Tensor = Tensor & { readonly dtype: 'float32'; readonly data: Float32Array };

/** Output `name` of a block run, checked: block files come from outside, so a wrong one is a MODEL error. */
export function outputTensor(outputs: NamedTensors, block: string, name: string): Tensor {
  const tensor = outputs[name];
  if (tensor === undefined) throw new SoraError('MODEL', `block ${block} returned no output named ${name}`);
  return tensor;
}

export function float32Output(outputs: NamedTensors, block: string, name: string): Float32Tensor {
  const tensor = outputTensor(outputs, block, name);
  if (tensor.dtype !== 'float32' || !(tensor.data instanceof Float32Array)) {
    throw new SoraError('MODEL', `block ${block} output ${name} is ${tensor.dtype}, expected float32`);
  }
  return tensor as Float32Tensor;
}

/** Bytes of the tensors' data. */
export function tensorBytes(tensors: NamedTensors): number {
  return Object.values(tensors).reduce((sum, tensor) => sum + tensor.data.byteLength, 0);
}

export function float32Tensor(dims: readonly number[], data: Float32Array): Float32Tensor {
  return tensor('float32', dims, data) as Float32Tensor;
}

export function int64Scalar(value: number): Tensor {
  return tensor('int64', [1], BigInt64Array.of(BigInt(value)));
}

/** Contract name of block `index` of `kind` (models/README.md). */
export function blockName(kind: BlockKind, index = 0): string {
  const name = contractName(kind, index);
  if (name === undefined) throw new SoraError('INTERNAL', `${kind} has no block ${index}`);
  return name;
}
