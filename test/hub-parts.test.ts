/** The pieces of `models pull` that need no hub: environment conventions, file choice, origins, progress lines. */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { originOf } from '../src/convert/checkpoint-folders.js';
import { checkpointFiles, OPENSORA_12, weightFiles } from '../src/convert/opensora-recipe.js';
import { convertProgress, downloadProgress } from '../src/cli/transfer-progress.js';
import { SoraError } from '../src/errors.js';
import { hubSettings } from '../src/hub/hub-settings.js';
import { tempDir } from './helpers/model-folder.js';

function stream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, write: (chunk: string) => chunks.push(chunk) } as unknown as NodeJS.WriteStream };
}

describe('hub settings from the environment, as huggingface_hub reads them', () => {
  it('HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub', async () => {
    expect((await hubSettings({ HF_HUB_CACHE: '/c', HF_HOME: '/h' })).cacheDir).toBe('/c');
    expect((await hubSettings({ HF_HOME: '/h', XDG_CACHE_HOME: '/x' })).cacheDir).toBe('/h/hub');
    expect((await hubSettings({ XDG_CACHE_HOME: '/x' })).cacheDir).toBe('/x/huggingface/hub');
    expect((await hubSettings({})).cacheDir).toBe(join(homedir(), '.cache', 'huggingface', 'hub'));
  });

  it('HF_ENDPOINT without its trailing slash; HF_HUB_OFFLINE in its truthy spellings', async () => {
    expect((await hubSettings({ HF_HOME: '/none' })).endpoint).toBe('https://huggingface.co');
    expect((await hubSettings({ HF_HOME: '/none', HF_ENDPOINT: 'https://hf-mirror.com/' })).endpoint).toBe('https://hf-mirror.com');
    for (const value of ['1', 'ON', 'yes', 'True']) expect((await hubSettings({ HF_HOME: '/none', HF_HUB_OFFLINE: value })).offline).toBe(true);
    for (const value of ['0', '', 'off']) expect((await hubSettings({ HF_HOME: '/none', HF_HUB_OFFLINE: value })).offline).toBe(false);
  });

  it('HF_TOKEN, else the token `huggingface-cli login` stored in $HF_HOME/token (or HF_TOKEN_PATH)', async () => {
    const home = await tempDir('hf-home-');
    await writeFile(join(home, 'token'), 'hf_stored\n');
    expect((await hubSettings({ HF_HOME: home })).token).toBe('hf_stored');
    expect((await hubSettings({ HF_HOME: home, HF_TOKEN: 'hf_env' })).token).toBe('hf_env');
    await writeFile(join(home, 'other'), 'hf_path');
    expect((await hubSettings({ HF_HOME: home, HF_TOKEN_PATH: join(home, 'other') })).token).toBe('hf_path');
    expect((await hubSettings({ HF_HOME: join(home, 'none') })).token).toBeUndefined();
    await rm(home, { recursive: true, force: true });
  });
});

describe('the files a pull takes from a repository', () => {
  it('safetensors before PyTorch pickles; an index with exactly its shards; nothing from subfolders', () => {
    const t5 = ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
      'pytorch_model.bin.index.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin', 'spiece.model',
      'tokenizer_config.json', 'special_tokens_map.json', 'README.md', 'flax_model.msgpack', 'fp16/model.safetensors'];
    expect(checkpointFiles('t5', OPENSORA_12.t5, t5)).toEqual([
      'config.json', 'spiece.model', 'tokenizer_config.json', 'special_tokens_map.json',
      'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
    ]);
    // DeepFloyd/t5-v1_1-xxl as older snapshots hold it: PyTorch shards only.
    expect(weightFiles(t5.filter((f) => !f.includes('safetensors')))).toEqual([
      'pytorch_model.bin.index.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin',
    ]);
    expect(checkpointFiles('stdit', OPENSORA_12.stdit, ['.gitattributes', 'README.md', 'config.json', 'model.safetensors'])).toEqual(['config.json', 'model.safetensors']);
    expect(weightFiles(['training_args.bin', 'ema.pt'])).toEqual(['ema.pt']);
  });

  it('a repository without weights, or a T5 without tokenizer files, is refused naming it and the revision', () => {
    expect(() => checkpointFiles('vae', OPENSORA_12.vae, ['README.md'])).toThrow(SoraError);
    expect(() => checkpointFiles('vae', OPENSORA_12.vae, ['README.md'])).toThrow('hpcai-tech/OpenSora-VAE-v1.2 at main holds no checkpoint');
    expect(() => checkpointFiles('t5', OPENSORA_12.t5, ['model.safetensors'])).toThrow('has neither spiece.model nor tokenizer.json');
  });
});

describe('checkpoint origins for the manifest', () => {
  it('a hub-cache snapshot gives repository, commit and the ref pointing at it; another folder its name', async () => {
    const cache = await tempDir('hub-cache-');
    const commit = 'ab'.repeat(20);
    const snapshot = join(cache, 'models--hpcai-tech--OpenSora-STDiT-v3', 'snapshots', commit);
    await mkdir(snapshot, { recursive: true });
    expect(await originOf('stdit', snapshot)).toEqual({ component: 'stdit', repo: 'hpcai-tech/OpenSora-STDiT-v3', revision: commit, commit });
    await mkdir(join(cache, 'models--hpcai-tech--OpenSora-STDiT-v3', 'refs'), { recursive: true });
    await writeFile(join(cache, 'models--hpcai-tech--OpenSora-STDiT-v3', 'refs', 'main'), commit);
    expect((await originOf('stdit', snapshot)).revision).toBe('main');
    expect(await originOf('vae', join(cache, 'my-vae'))).toEqual({ component: 'vae', folder: 'my-vae' });
    expect(await originOf('vae', join(snapshot, 'sub'))).toEqual({ component: 'vae', folder: 'sub' });
    await rm(cache, { recursive: true, force: true });
  });
});

describe('download and conversion progress', () => {
  it('on a terminal: one redrawn line with a bar over all bytes, the amount, the rate and the ETA', () => {
    const { chunks, stream: out } = stream(true);
    let now = 0;
    const progress = downloadProgress(out, 100 * 2 ** 20, () => now);
    progress.fileStart('org/m/model.safetensors', 100 * 2 ** 20, 0);
    now = 1000;
    progress.bytes('org/m/model.safetensors', 10 * 2 ** 20);
    now = 2000;
    progress.bytes('org/m/model.safetensors', 20 * 2 ** 20);
    progress.fileDone('org/m/model.safetensors');
    progress.finish();
    expect(chunks[0]).toBe(`\rdownloading [${'-'.repeat(24)}] 0 B/100.0 MiB  org/m/model.safetensors\x1b[K`);
    // 10 MiB in the second between the two samples: 10 MiB/s, 80 MiB to go.
    expect(chunks[2]).toBe(`\rdownloading [${'#'.repeat(5)}${'-'.repeat(19)}] 20.0 MiB/100.0 MiB  10.0 MiB/s  ETA 0:08  org/m/model.safetensors\x1b[K`);
    expect(chunks.at(-1)).toBe('\rdownloaded org/m/model.safetensors: 100.0 MiB in 0:02\x1b[K\n');
  });

  it('piped: a line when a file starts (saying where it resumes), every 5 s in between, and when it ends', () => {
    const { chunks, stream: out } = stream(false);
    let now = 0;
    const progress = downloadProgress(out, 90 * 2 ** 20, () => now);
    progress.fileStart('org/m/a.safetensors', 100 * 2 ** 20, 10 * 2 ** 20);
    for (let second = 1; second <= 6; second++) {
      now = second * 1000;
      progress.bytes('org/m/a.safetensors', (10 + 10 * second) * 2 ** 20);
    }
    progress.waiting('org/m/b.safetensors', 4242);
    expect(chunks).toEqual([
      'download org/m/a.safetensors: 100.0 MiB, resuming at 10.0 MiB\n',
      'download org/m/a.safetensors: 60.0 MiB of 100.0 MiB (60%), 10.0 MiB/s, ETA 0:04\n',
      'waiting for process 4242, which is downloading org/m/b.safetensors\n',
    ]);
  });

  it('conversion: one line per unit when piped; a bar with an ETA over the units on a terminal', () => {
    const piped = stream(false);
    const plain = convertProgress(piped.stream);
    plain.event({ kind: 'config', text: 'config stdit: tiny (config.json: depth 4)' });
    plain.event({ kind: 'unit', index: 1, total: 4, blocks: 't5embed-tokens' });
    expect(piped.chunks).toEqual(['config stdit: tiny (config.json: depth 4)\n', 'convert 1/4 t5embed-tokens\n']);
    const tty = stream(true);
    let now = 0;
    const bar = convertProgress(tty.stream, () => now);
    bar.event({ kind: 'unit', index: 1, total: 4, blocks: 'a' });
    now = 10_000;
    bar.event({ kind: 'unit', index: 2, total: 4, blocks: 'b' });
    expect(tty.chunks[1]).toBe(`\rconverting [${'#'.repeat(6)}${'-'.repeat(18)}] 2/4 b  ETA 0:30\x1b[K`);
  });
});
