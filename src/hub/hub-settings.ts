/**
 * Where the Hugging Face hub is and where its files are cached, read from the environment variables the Python
 * `huggingface_hub` library reads, so that a machine set up for one is set up for the other: files a Python user
 * already downloaded are found, mirrors (`HF_ENDPOINT`) and tokens (`HF_TOKEN`, or `huggingface-cli login`'s token
 * file) work, and `HF_HUB_OFFLINE=1` keeps everything off the network.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface HubSettings {
  /** Base URL without a trailing slash. */
  readonly endpoint: string;
  /** The hub cache (`…/hub`), holding `models--org--name/{blobs,snapshots,refs}`. */
  readonly cacheDir: string;
  readonly token?: string;
  readonly offline: boolean;
}

/** huggingface_hub's truthy spellings of a boolean variable. */
function truthy(value: string | undefined): boolean {
  return value !== undefined && ['1', 'on', 'yes', 'true'].includes(value.trim().toLowerCase());
}

function hfHome(env: NodeJS.ProcessEnv): string {
  return env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
}

async function storedToken(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const path = env.HF_TOKEN_PATH || join(hfHome(env), 'token');
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.trim() || undefined;
}

export async function hubSettings(env: NodeJS.ProcessEnv = process.env): Promise<HubSettings> {
  const token = env.HF_TOKEN?.trim() || env.HUGGING_FACE_HUB_TOKEN?.trim() || (await storedToken(env));
  return {
    endpoint: (env.HF_ENDPOINT?.trim() || DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    cacheDir: env.HF_HUB_CACHE || join(hfHome(env), 'hub'),
    ...(token !== undefined && { token }),
    offline: truthy(env.HF_HUB_OFFLINE),
  };
}
