/**
 * The three Open-Sora 1.2 repositories at tiny size, as the Python converter tests write them
 * (scripts/make_upstream_checkpoints.py --tiny: models/tiny's weights in the upstream formats, T5's spiece.model from
 * test/fixtures/spiece), served by a LocalHub under their real names and the recipe's pinned revisions, with the
 * files a real repository also holds that a pull must not download.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { OPENSORA_12 } from '../../src/convert/opensora-recipe.js';
import type { Component } from '../../src/model/contract.js';
import { ROOT } from './cli.js';
import { LocalHub, type HubFile } from './local-hub.js';

export const PYTHON = '/usr/bin/python3';
const run = promisify(execFile);

const FOLDERS: Readonly<Record<Component, string>> = { t5: 't5-v1_1-xxl', stdit: 'OpenSora-STDiT-v3', vae: 'OpenSora-VAE-v1.2' };

/** The commit each repository's `main` points to on the test hub (T5's is the recipe's pinned commit). */
export const COMMITS: Readonly<Record<Component, string>> = {
  t5: OPENSORA_12.t5.revision,
  stdit: createHash('sha1').update('stdit').digest('hex'),
  vae: createHash('sha1').update('vae').digest('hex'),
};

/** Why the converter cannot run here, or null. */
export async function converterProblem(): Promise<string | null> {
  if (!existsSync(PYTHON)) return `${PYTHON} not found (install python3-torch, see .ci/run)`;
  try {
    await run(PYTHON, ['-c', 'import torch, onnx, numpy, jsonschema']);
    return null;
  } catch {
    return `${PYTHON} cannot import torch, onnx, numpy and jsonschema (see .ci/run)`;
  }
}

export async function writeTinyRepositories(dir: string): Promise<void> {
  await run(PYTHON, [join(ROOT, 'scripts', 'make_upstream_checkpoints.py'), '--out', dir, '--tiny'], { cwd: ROOT });
}

/** Files of real repositories that conversion does not need: a pull must leave them on the hub. */
function unneeded(component: Component, files: readonly HubFile[]): HubFile[] {
  const weights = files.filter((f) => f.path.endsWith('.safetensors')).map((f) => f.data);
  const extra: HubFile[] = [
    { path: '.gitattributes', data: Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n') },
    { path: 'README.md', data: Buffer.from(`# ${component}\n`) },
    { path: 'fp16/model.safetensors', data: weights[0]! },
  ];
  if (component === 't5') {
    extra.push({ path: 'pytorch_model.bin', data: Buffer.concat(weights) }, { path: 'flax_model.msgpack', data: Buffer.from('flax') });
  }
  return extra;
}

export async function tinyHub(repositories: string, options: { token?: string } = {}): Promise<LocalHub> {
  const hub = await LocalHub.start();
  for (const component of Object.keys(FOLDERS) as Component[]) {
    const folder = join(repositories, FOLDERS[component]);
    const files: HubFile[] = [];
    for (const path of (await readdir(folder)).sort()) files.push({ path, data: await readFile(join(folder, path)) });
    hub.addRepo(OPENSORA_12[component].repo, {
      commit: COMMITS[component],
      files: [...files, ...unneeded(component, files)],
      ...(options.token !== undefined && { token: options.token }),
    });
  }
  return hub;
}

export function hubEnv(hub: LocalHub, hfHome: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { HF_ENDPOINT: hub.url, HF_HOME: hfHome, HF_HUB_CACHE: '', HF_TOKEN: '', HF_HUB_OFFLINE: '', ONDEVICE_SORA_PYTHON: PYTHON, ...extra };
}
