/**
 * Checkpoint folders → a model folder: tokenizer files prepared and checked, the Python converter run into a
 * hidden folder beside the target, the origin of every checkpoint added to its manifest, the result loaded as any
 * model is, and only then renamed into place. A failed or interrupted conversion leaves nothing behind.
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { displayPath } from '../display-path.js';
import { SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import { COMPONENTS, type Component } from '../model/contract.js';
import { loadModel, MANIFEST_FILE, type Model } from '../model/manifest.js';
import { t5VocabSize, type CheckpointFolders } from './checkpoint-folders.js';
import { runConverter, type ConverterEvent } from './run-converter.js';
import { writeTokenizerFiles } from './tokenizer-files.js';

import type { ModelFormat, WeightDtype } from './model-formats.js';

export { DTYPES, FORMATS, type ModelFormat, type WeightDtype } from './model-formats.js';

export interface ConvertJob {
  readonly folders: CheckpointFolders;
  /** Folder with tokenizer.json or spiece.model; the T5 folder when absent. */
  readonly tokenizerDir?: string;
  readonly output: string;
  readonly format: ModelFormat;
  readonly dtype: WeightDtype;
  readonly name?: string;
  readonly overwrite: boolean;
  readonly python: string;
  readonly configs: Partial<Record<Component, string>>;
  readonly logger: Logger;
  readonly onEvent?: (event: ConverterEvent | { readonly kind: 'tokenizer'; readonly text: string }) => void;
  readonly signal?: AbortSignal;
}

/** Refuses an existing target unless overwriting, before any download or conversion. */
export async function checkOutput(output: string, overwrite: boolean): Promise<void> {
  if (!overwrite && (await stat(output).catch(() => undefined)) !== undefined) {
    throw new SoraError('IO', `${displayPath(output)} already exists (pass --overwrite to replace it)`);
  }
}

/** Canonical JSON as the Python side writes it: sorted keys, two-space indent, trailing newline. */
function canonicalJson(value: unknown): string {
  const sorted = (item: unknown): unknown => {
    if (Array.isArray(item)) return item.map(sorted);
    if (typeof item !== 'object' || item === null) return item;
    return Object.fromEntries(Object.keys(item).sort().map((key) => [key, sorted((item as Record<string, unknown>)[key])]));
  };
  return `${JSON.stringify(sorted(value), null, 2)}\n`;
}

async function recordOrigins(dir: string, folders: CheckpointFolders): Promise<void> {
  const path = join(dir, MANIFEST_FILE);
  const manifest = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  const checkpoints = COMPONENTS.map((component) => folders[component].origin);
  await writeFile(path, canonicalJson({ ...manifest, checkpoints }));
}

function converterArgs(job: ConvertJob, tokenizerDir: string, out: string): string[] {
  const { folders } = job;
  const args = ['--stdit', folders.stdit.dir, '--t5', folders.t5.dir, '--vae', folders.vae.dir, '--tokenizer', tokenizerDir];
  args.push('--out', out, '--dtype', job.dtype);
  if (job.format !== 'onnx') args.push('--format', job.format);
  if (job.name !== undefined) args.push('--name', job.name);
  for (const component of COMPONENTS) {
    const config = job.configs[component];
    if (config !== undefined) args.push(`--config-${component}`, config);
  }
  return args;
}

export async function convertModel(job: ConvertJob): Promise<Model> {
  const target = resolve(job.output);
  await checkOutput(target, job.overwrite);
  const partial = join(dirname(target), `.${basename(target)}.${process.pid}.part`);
  const tokenizerDir = `${partial}-tokenizer`;
  try {
    await mkdir(tokenizerDir, { recursive: true });
    const vocabSize = await t5VocabSize(job.folders.t5.dir);
    const made = await writeTokenizerFiles(job.tokenizerDir ?? job.folders.t5.dir, tokenizerDir, vocabSize, job.logger);
    job.onEvent?.({ kind: 'tokenizer', text: `tokenizer: ${made}` });
    await runConverter({
      python: job.python,
      args: converterArgs(job, tokenizerDir, partial),
      logger: job.logger,
      ...(job.onEvent && { onEvent: job.onEvent }),
      ...(job.signal && { signal: job.signal }),
    });
    await recordOrigins(partial, job.folders);
    await loadModel(partial); // the converter's manifest and the origins, checked by our loader before the rename
    job.signal?.throwIfAborted();
    await rm(target, { recursive: true, force: true });
    await rename(partial, target);
    return await loadModel(target);
  } finally {
    await rm(partial, { recursive: true, force: true });
    await rm(tokenizerDir, { recursive: true, force: true });
  }
}
