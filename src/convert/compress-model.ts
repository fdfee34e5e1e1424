/**
 * A model folder → a copy whose weights are stored as float16 or int8 (scripts/compress_model.py; the graphs are
 * rewritten with onnx, CoreML packages quantised with coremltools). The copy keeps every block's names, inputs and
 * outputs, so `generate` runs it unchanged. It is written into the claim's hidden folder beside the target, loaded
 * as any model is, and only then renamed into place; an existing target is never replaced.
 */
import { rename, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { displayPath } from '../display-path.js';
import { SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import { loadModel, type Model } from '../model/manifest.js';
import { packagePath } from '../package-root.js';
import { claimPath } from '../video/claim.js';
import { JSONSCHEMA, NUMPY, ONNX, type PythonModule } from './python.js';
import { runConverter, type ConverterEvent } from './run-converter.js';

export const COMPRESS_SCRIPT = packagePath('scripts', 'compress_model.py');
/** What scripts/compress_model.py imports; no torch (CoreML folders need coremltools too). */
export const COMPRESS_MODULES: readonly PythonModule[] = [ONNX, NUMPY, JSONSCHEMA];

export const WEIGHT_SETTINGS = ['float16', 'int8'] as const;
export type WeightSetting = (typeof WEIGHT_SETTINGS)[number];

export interface CompressJob {
  readonly source: string;
  readonly output: string;
  readonly weights: WeightSetting;
  readonly python: string;
  readonly logger: Logger;
  readonly onEvent?: (event: ConverterEvent) => void;
  readonly signal?: AbortSignal;
}

async function refuseExisting(target: string): Promise<void> {
  if ((await stat(target).catch(() => undefined)) !== undefined) {
    throw new SoraError('IO', `${displayPath(target)} already exists (models compress never replaces a folder; choose another -o)`);
  }
}

/** The source as a model folder with manifest.json (a published CoreML layout has none to rewrite). */
export async function compressibleModel(dir: string): Promise<Model> {
  const model = await loadModel(dir);
  if (model.source.kind !== 'manifest') {
    throw new SoraError('INPUT', `${displayPath(model.dir)}: has no manifest.json to compress (convert it first with models convert)`);
  }
  // An ONNX block's dtype is how its weights are stored; a CoreML block's is its compute precision.
  const onnx = model.blocks.filter((block) => block.format === 'onnx');
  const stored = [...new Set(onnx.map((block) => block.dtype))].filter((dtype) => dtype !== 'float32');
  if (stored.length > 0) {
    throw new SoraError('INPUT', `${displayPath(model.dir)}: weights already stored as ${stored.join(', ')}; compress a float32 folder`);
  }
  return model;
}

export async function compressModel(job: CompressJob): Promise<Model> {
  const source = await compressibleModel(job.source);
  const target = resolve(job.output);
  await refuseExisting(target);
  const claim = await claimPath(target, { command: 'models compress' });
  try {
    await runConverter({
      python: job.python,
      script: COMPRESS_SCRIPT,
      args: ['--model', source.dir, '--weights', job.weights, '--out', claim.partPath],
      logger: job.logger,
      ...(job.onEvent && { onEvent: job.onEvent }),
      ...(job.signal && { signal: job.signal }),
    });
    await loadModel(claim.partPath); // the script's manifest, checked by our loader before the rename
    job.signal?.throwIfAborted();
    await refuseExisting(target); // again: the script ran for a while
    await rename(claim.partPath, target);
    return await loadModel(target);
  } finally {
    claim.release();
  }
}
