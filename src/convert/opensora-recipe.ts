/**
 * What `models pull opensora-1.2` downloads: the three Hugging Face repositories Open-Sora 1.2 loads, each at a
 * pinned revision, and from each only the files the converter reads.
 *
 * Pins: DeepFloyd/t5-v1_1-xxl at c9c625d2ec93667ec579ede125fd3811d1f81d37, the snapshot that public Open-Sora-Plan
 * and ComfyUI code loads by path (the commit hash appears in their hub-cache paths). No commit of the two hpcai-tech
 * repositories could be found in public sources from this workplace (no hub access), so they default to `main`
 * until pinned; every pull records the commit it got in the model's manifest (`checkpoints`).
 */
import { SoraError } from '../errors.js';
import type { Component } from '../model/contract.js';

export interface RepoPin {
  readonly repo: string;
  readonly revision: string;
}

export const MODEL_IDS = ['opensora-1.2'] as const;
export type ModelId = (typeof MODEL_IDS)[number];

export const OPENSORA_12: Readonly<Record<Component, RepoPin>> = {
  t5: { repo: 'DeepFloyd/t5-v1_1-xxl', revision: 'c9c625d2ec93667ec579ede125fd3811d1f81d37' },
  stdit: { repo: 'hpcai-tech/OpenSora-STDiT-v3', revision: 'main' },
  vae: { repo: 'hpcai-tech/OpenSora-VAE-v1.2', revision: 'main' },
};

/** The model_type in each component's config.json (Open-Sora's and transformers' config classes). */
export const CONFIG_MODEL_TYPES: Readonly<Record<Component, string>> = { t5: 't5', stdit: 'STDiT3', vae: 'VideoAutoencoderPipeline' };

const TOKENIZER_FILES = ['spiece.model', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
const WEIGHT_EXTENSIONS = ['.bin', '.pt', '.pth', '.ckpt'];

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An index and the shards it names by Hugging Face's naming (`{prefix}-00001-of-00002{suffix}`). */
function sharded(files: readonly string[], index: string, suffix: string): string[] {
  const prefix = escape(index.slice(0, -`${suffix}.index.json`.length));
  const shard = new RegExp(`^${prefix}-\\d+-of-\\d+${escape(suffix)}$`);
  return [index, ...files.filter((file) => shard.test(file))];
}

/**
 * The weight files the converter would read from this file list, as scripts/sora/safetensors_io.py chooses in a
 * folder: a safetensors index and its shards, else the *.safetensors files, else a PyTorch index and its shards,
 * else the PyTorch files. Only top-level files: subfolders hold other variants (fp16 copies, other frameworks).
 */
export function weightFiles(files: readonly string[]): string[] {
  const top = files.filter((file) => !file.includes('/'));
  const index = (suffix: string): string | undefined => top.filter((file) => file.endsWith(`${suffix}.index.json`)).sort()[0];
  const safetensorsIndex = index('.safetensors');
  if (safetensorsIndex !== undefined) return sharded(top, safetensorsIndex, '.safetensors');
  const safetensors = top.filter((file) => file.endsWith('.safetensors'));
  if (safetensors.length > 0) return safetensors;
  const torchIndex = index('.bin');
  if (torchIndex !== undefined) return sharded(top, torchIndex, '.bin');
  return top.filter((file) => WEIGHT_EXTENSIONS.some((ext) => file.endsWith(ext)) && !file.startsWith('training_args'));
}

/** The files to fetch for one component: config.json, the weights and, for T5, the tokenizer files. */
export function checkpointFiles(component: Component, pin: RepoPin, files: readonly string[]): string[] {
  const weights = weightFiles(files);
  if (weights.length === 0) {
    throw new SoraError('DOWNLOAD', `${pin.repo} at ${pin.revision} holds no checkpoint the converter reads (*.safetensors, *.bin)`);
  }
  const extra = files.filter((file) => file === 'config.json' || (component === 't5' && TOKENIZER_FILES.includes(file)));
  if (component === 't5' && !extra.some((file) => file === 'spiece.model' || file === 'tokenizer.json')) {
    throw new SoraError('DOWNLOAD', `${pin.repo} at ${pin.revision} has neither spiece.model nor tokenizer.json: no tokenizer to build`);
  }
  return [...extra, ...weights];
}
