import { SoraError } from '../errors.js';
import { contractName, type BlockKind } from '../model/contract.js';
import { isResident, type ResidentTensor, type RunOutputs, type Tensor, type TensorValue } from '../runtime/backend.js';
import { tensor } from '../runtime/tensor.js';

export type Float32Tensor = Tensor & { readonly dtype: 'float32'; readonly data: Float32Array };

function outputValue(outputs: RunOutputs, block: string, name: string): TensorValue {
  const value = outputs[name];
  if (value === undefined) throw new SoraError('MODEL', `block ${block} returned no output named ${name}`);
  return value;
}

/** Output `name` of a block run, checked: block files come from outside, so a wrong one is a MODEL error. */
export function outputTensor(outputs: RunOutputs, block: string, name: string): Tensor {
  const value = outputValue(outputs, block, name);
  if (isResident(value)) throw new SoraError('INTERNAL', `block ${block} output ${name} was kept resident, not returned`);
  return value;
}

/** A kept output (RunOptions.keep) of a block run. */
export function residentOutput(outputs: RunOutputs, block: string, name: string): ResidentTensor {
  const value = outputValue(outputs, block, name);
  if (!isResident(value)) throw new SoraError('INTERNAL', `block ${block} output ${name} was returned, not kept`);
  return value;
}

/** A kept float32 output: its dtype is checked here, where the block's data would be. */
export function residentFloat32Output(outputs: RunOutputs, block: string, name: string): ResidentTensor {
  const value = residentOutput(outputs, block, name);
  if (value.dtype !== 'float32') throw new SoraError('MODEL', `block ${block} output ${name} is ${value.dtype}, expected float32`);
  return value;
}

export function float32Output(outputs: RunOutputs, block: string, name: string): Float32Tensor {
  const tensor = outputTensor(outputs, block, name);
  if (tensor.dtype !== 'float32' || !(tensor.data instanceof Float32Array)) {
    throw new SoraError('MODEL', `block ${block} output ${name} is ${tensor.dtype}, expected float32`);
  }
  return tensor as Float32Tensor;
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
