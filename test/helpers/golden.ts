/**
 * Golden parity data written by scripts/make_golden.py: `{block, inputs, outputs, meta}`, each tensor
 * `{dtype, shape, data}` with `data` the base64 of its little-endian bytes.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Component } from '../../src/model/contract.js';
import { loadModel, type Model } from '../../src/model/manifest.js';
import { componentSources, ResidentBlockProvider } from '../../src/pipeline/block-provider.js';
import type { Tensor, TensorDType } from '../../src/runtime/backend.js';
import { OnnxBackend } from '../../src/runtime/onnx-backend.js';
import { fromBytes } from '../../src/runtime/tensor.js';

export const GOLDEN_DIR = new URL('../fixtures/golden/', import.meta.url);
/** The shipped tiny model the golden data was made from. */
export const TINY_MODEL = fileURLToPath(new URL('../../models/tiny', import.meta.url));

interface StoredTensor {
  readonly dtype: TensorDType;
  readonly shape: number[];
  readonly data: string;
}

export interface Golden {
  readonly block: string;
  readonly inputs: Record<string, Tensor>;
  readonly outputs: Record<string, Tensor>;
  readonly meta: Record<string, unknown>;
}

function decode(group: Record<string, StoredTensor>): Record<string, Tensor> {
  return Object.fromEntries(
    Object.entries(group).map(([name, t]) => [name, fromBytes(t.dtype, t.shape, Buffer.from(t.data, 'base64'))]),
  );
}

export async function readGolden(file: string): Promise<Golden> {
  const json = JSON.parse(await readFile(new URL(file, GOLDEN_DIR), 'utf8')) as {
    block: string;
    inputs: Record<string, StoredTensor>;
    outputs: Record<string, StoredTensor>;
    meta?: Record<string, unknown>;
  };
  return { block: json.block, inputs: decode(json.inputs), outputs: decode(json.outputs), meta: json.meta ?? {} };
}

/** max|actual − expected| / max|expected|: relative to the tensor's scale, so values near zero do not dominate. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ ${expected.length}`);
  let difference = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    difference = Math.max(difference, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return difference / scale;
}

export interface TinyBlocks {
  readonly model: Model;
  readonly provider: ResidentBlockProvider;
  /** Unloads the blocks and stops the backend's workers. */
  close(): Promise<void>;
}

/** One component of the shipped tiny model on a real ONNX Runtime backend. */
export async function tinyBlocks(component: Component): Promise<TinyBlocks> {
  const model = await loadModel(TINY_MODEL);
  const backend = new OnnxBackend();
  const provider = new ResidentBlockProvider(backend, componentSources(model, component));
  return {
    model,
    provider,
    async close() {
      await provider.close();
      await backend.close();
    },
  };
}
