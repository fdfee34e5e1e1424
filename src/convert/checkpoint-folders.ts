/**
 * The checkpoint folders a conversion reads: which component each holds (from its config.json's model_type) and,
 * for folders inside a Hugging Face hub cache (`models--org--name/snapshots/<commit>`), which repository and
 * commit they are, for the manifest's `checkpoints`.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import * as z from 'zod';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';
import { COMPONENTS, type Component } from '../model/contract.js';
import type { CheckpointOrigin } from '../model/manifest-schema.js';
import { CONFIG_MODEL_TYPES, weightFiles } from './opensora-recipe.js';

export interface CheckpointFolder {
  readonly component: Component;
  readonly dir: string;
  readonly origin: CheckpointOrigin;
}

export type CheckpointFolders = Readonly<Record<Component, CheckpointFolder>>;

/** The fields of a Hugging Face config.json read here; the rest is the converter's business. */
const HubConfigSchema = z.looseObject({
  model_type: z.string().optional(),
  vocab_size: z.int().positive().optional(),
});

async function readConfig(dir: string): Promise<z.infer<typeof HubConfigSchema> | undefined> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SoraError('INPUT', `${displayPath(path)}: invalid JSON: ${errorMessage(error)}`);
  }
  const parsed = HubConfigSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SoraError('INPUT', `${displayPath(path)}: ${issue?.path.join('.') || 'top level'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** The component a folder's config.json declares, if it declares one we know. */
async function declaredComponent(dir: string): Promise<Component | undefined> {
  const modelType = (await readConfig(dir))?.model_type;
  return COMPONENTS.find((component) => CONFIG_MODEL_TYPES[component] === modelType);
}

/** Repository, revision and commit of a folder inside a hub cache; the folder's name otherwise. */
export async function originOf(component: Component, dir: string): Promise<CheckpointOrigin> {
  const parts = resolve(dir).split(sep);
  const at = parts.lastIndexOf('snapshots');
  const repoFolder = at > 0 ? parts[at - 1]! : '';
  const commit = parts[at + 1] ?? '';
  const match = /^models--([^/]+?)--([^/]+)$/.exec(repoFolder);
  if (at < 1 || match === null || !/^[0-9a-f]{40}$/.test(commit) || at + 2 !== parts.length) return { component, folder: basename(resolve(dir)) };
  const refs = join(parts.slice(0, at).join(sep), 'refs');
  let revision = commit;
  for (const ref of await readdir(refs, { recursive: true }).catch(() => [] as string[])) {
    if ((await readFile(join(refs, ref), 'utf8').catch(() => '')).trim() === commit) revision = ref.split(sep).join('/');
  }
  return { component, repo: `${match[1]}/${match[2]}`, revision, commit };
}

async function checkFolder(component: Component, dir: string, flag: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info?.isDirectory() !== true) throw new SoraError('INPUT', `${flag} ${displayPath(dir)}: no such folder`);
  if (weightFiles(await readdir(dir)).length === 0) {
    throw new SoraError('INPUT', `${flag} ${displayPath(dir)}: no checkpoint files (*.safetensors, *.bin) for the ${component}`);
  }
}

/**
 * The three folders: given by flag, or recognised among `dirs` by their config.json. Every component must be
 * found exactly once; the message says which is missing and how to name it.
 */
export async function checkpointFolders(dirs: readonly string[], named: Partial<Record<Component, string>>): Promise<CheckpointFolders> {
  const found: Partial<Record<Component, string>> = { ...named };
  for (const dir of dirs) {
    const component = await declaredComponent(dir);
    if (component === undefined) {
      throw new SoraError(
        'USAGE',
        `${displayPath(dir)}: no config.json naming an STDiT3, T5 or VideoAutoencoderPipeline model; pass the folder with --stdit, --t5 or --vae`,
      );
    }
    if (found[component] !== undefined) {
      throw new SoraError('USAGE', `${displayPath(dir)} and ${displayPath(found[component]!)} both hold a ${component} checkpoint`);
    }
    found[component] = dir;
  }
  const missing = COMPONENTS.filter((component) => found[component] === undefined);
  if (missing.length > 0) {
    throw new SoraError('USAGE', `no ${missing.join(', ')} checkpoint folder given (pass the downloaded folders, or --${missing[0]} <dir>)`);
  }
  const folders = {} as Record<Component, CheckpointFolder>;
  for (const component of COMPONENTS) {
    const dir = resolve(found[component]!);
    await checkFolder(component, dir, named[component] !== undefined ? `--${component}` : `${component} checkpoint`);
    folders[component] = { component, dir, origin: await originOf(component, dir) };
  }
  return folders;
}

/** The T5 config.json's vocab_size (the embedding's rows), when the folder has one. */
export async function t5VocabSize(dir: string): Promise<number | undefined> {
  return (await readConfig(dir))?.vocab_size;
}
