/**
 * `models pull` and `models convert` as a user runs them (the built CLI), against a Hugging Face hub served on
 * 127.0.0.1 holding the three repositories at tiny size in their upstream formats. The chain pull → convert →
 * generate runs end to end; faults are injected on the wire (401/403, a cut connection, a wrong checksum, a stall
 * ended by SIGTERM, a size no disk holds) and in the inputs. Skipped without Debian's python3-torch (see .ci/run).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENSORA_12 } from '../src/convert/opensora-recipe.js';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { loadModel } from '../src/model/manifest.js';
import { assertBuilt, cli, expectOneLineError, ROOT, type CliResult } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import type { LocalHub } from './helpers/local-hub.js';
import { tempDir } from './helpers/model-folder.js';
import { COMMITS, converterProblem, hubEnv, PYTHON, tinyHub, writeTinyRepositories } from './helpers/upstream-hub.js';

const STDIT = 'hpcai-tech/OpenSora-STDiT-v3';
const VAE = 'hpcai-tech/OpenSora-VAE-v1.2';
const T5 = 'DeepFloyd/t5-v1_1-xxl';
const NEEDED = {
  [T5]: ['config.json', 'spiece.model', 'tokenizer_config.json', 'model.safetensors.index.json'],
  [STDIT]: ['config.json', 'model.safetensors'],
  [VAE]: ['config.json', 'model.safetensors'],
};
const SLOW = 300_000;

let problem: string | null = null;
let root: string;
let repositories: string;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-pull-');
  problem = await converterProblem();
  if (problem !== null) return;
  repositories = join(root, 'repositories');
  await writeTinyRepositories(repositories);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function skipWithoutPython(context: { skip: (note: string) => void }): void {
  if (problem !== null) context.skip(problem);
}

async function withHub<T>(work: (hub: LocalHub) => Promise<T>, options: { token?: string } = {}): Promise<T> {
  const hub = await tinyHub(repositories, options);
  try {
    return await work(hub);
  } finally {
    await hub.close();
  }
}

function repoFolder(hfHome: string, repo: string): string {
  return join(hfHome, 'hub', `models--${repo.replace('/', '--')}`);
}

/** Paths the hub transferred bytes of (GETs of resolve URLs and file-store blobs), by repository path. */
function transferred(hub: LocalHub): string[] {
  return hub.requests.filter((r) => r.method === 'GET' && r.path.includes('/resolve/')).map((r) => r.path.replace(/^\/(.+?)\/resolve\/[^/]+\//, '$1/'));
}

async function pull(hub: LocalHub, hfHome: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return cli(['models', 'pull', 'opensora-1.2', ...args], hubEnv(hub, hfHome, env));
}

async function leftovers(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((name) => name.endsWith('.incomplete') || name.endsWith('.lock') || name.includes('.part'));
}

describe('models pull → convert → generate (local hub, tiny upstream checkpoints)', () => {
  const hfHome = () => join(root, 'hf-main');
  const model = () => join(root, 'opensora');

  it('downloads only the needed files into the hub cache, converts, records the revisions, and the model generates', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(async (hub) => {
      const result = await pull(hub, hfHome(), ['-o', model()]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^wrote .*opensora: opensora-v1\.2, 32 blocks, .* \(from DeepFloyd\/t5-v1_1-xxl@c9c625d2ec93, hpcai-tech\/OpenSora-STDiT-v3@\w{12} \(main\)/);
      // Piped stderr: plain progress lines, download then conversion.
      expect(result.stderr).toContain(`download ${STDIT}/model.safetensors: `);
      expect(result.stderr).toMatch(new RegExp(`downloaded ${STDIT}/model.safetensors: .* in \\d+:\\d\\d`));
      expect(result.stderr).toContain('tokenizer: built from ');
      expect(result.stderr).toContain('config stdit: tiny (config.json: depth 4');
      expect(result.stderr).toContain('convert 1/28 t5embed-tokens\n');
      expect(result.stderr).toContain('convert 28/28 vae_spatial_part4\n');
      expect(result.stderr).not.toContain('\r');

      // Only what conversion reads went over the wire: no README, .bin, flax or fp16 copies.
      const got = transferred(hub);
      for (const [repo, files] of Object.entries(NEEDED)) for (const file of files) expect(got).toContain(`${repo}/${file}`);
      expect(got.filter((path) => /README|\.gitattributes|\.bin$|msgpack|fp16\//.test(path))).toEqual([]);
      // The token-free file store never saw an Authorization header (none was set here either).
      expect(hub.requests.filter((r) => r.server === 'store' && r.authorization !== undefined)).toEqual([]);

      // The cache has huggingface_hub's layout: blobs by etag, relative links from the commit's snapshot, refs.
      const stdit = repoFolder(hfHome(), STDIT);
      const link = join(stdit, 'snapshots', COMMITS.stdit, 'model.safetensors');
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      const target = await readlink(link);
      const sha = createHash('sha256').update(await readFile(join(repositories, 'OpenSora-STDiT-v3', 'model.safetensors'))).digest('hex');
      expect(target).toBe(`../../blobs/${sha}`);
      expect((await readFile(join(stdit, 'refs', 'main'), 'utf8')).trim()).toBe(COMMITS.stdit);
      expect(existsSync(join(repoFolder(hfHome(), T5), 'refs'))).toBe(false); // pinned by commit: no branch to record
      expect(await leftovers(join(hfHome(), 'hub'))).toEqual([]);

      const loaded = await loadModel(model());
      expect(loaded.checkpoints).toEqual([
        { component: 't5', repo: T5, revision: OPENSORA_12.t5.revision, commit: COMMITS.t5 },
        { component: 'stdit', repo: STDIT, revision: 'main', commit: COMMITS.stdit },
        { component: 'vae', repo: VAE, revision: 'main', commit: COMMITS.vae },
      ]);
      expect(loaded.tokenizer.files.map((f) => f.relativePath).sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']);
      expect((await readdir(root)).filter((name) => name.includes('.part'))).toEqual([]);
    });

    const inspected = await cli(['models', 'inspect', model()]);
    expect(inspected.stdout).toContain(`converted from: t5 ${T5}@${COMMITS.t5}, stdit ${STDIT}@${COMMITS.stdit} (main), vae ${VAE}@${COMMITS.vae} (main)`);
    const video = join(root, 'ball.mp4');
    const generated = await cli(['generate', 'a red ball bouncing', '-o', video, '--model', model(), '--steps', '2', '--num-frames', '17', '--resolution', '128x128', '--seed', '3']);
    expect(generated.code, generated.stderr).toBe(0);
    expect((await stat(video)).size).toBeGreaterThan(1000);
  });

  it('a second pull is served from the cache: metadata only, no file transferred', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(async (hub) => {
      const result = await pull(hub, hfHome(), ['--download-only']);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain('convert with: ondevice-sora models convert ');
      expect(hub.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `GET /api/models/${T5}/revision/${OPENSORA_12.t5.revision}`,
        `GET /api/models/${STDIT}/revision/main`,
        `GET /api/models/${VAE}/revision/main`,
      ]);
    });
  });

  it('HF_HUB_OFFLINE=1: the cached snapshot and no network at all; an empty cache is one error naming the repository', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(async (hub) => {
      const offline = await pull(hub, hfHome(), ['--download-only', '--json'], { HF_HUB_OFFLINE: '1' });
      expect(offline.code, offline.stderr).toBe(0);
      expect(hub.requests).toEqual([]);
      const listed = JSON.parse(offline.stdout) as { checkpoints: { repo: string; commit: string; dir: string }[] };
      expect(listed.checkpoints.map((c) => [c.repo, c.commit])).toEqual([[T5, COMMITS.t5], [STDIT, COMMITS.stdit], [VAE, COMMITS.vae]]);
      const empty = await pull(hub, join(root, 'hf-empty'), ['--download-only'], { HF_HUB_OFFLINE: '1' });
      expectOneLineError(empty, ERROR_EXIT_CODES.DOWNLOAD, `HF_HUB_OFFLINE is set and ${T5} at ${OPENSORA_12.t5.revision} is not in the cache`);
      expect(hub.requests).toEqual([]);
    });
  });

  it('models convert: the downloaded snapshot folders in any order, float16; origins read from the cache path', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    const dirs = [STDIT, VAE, T5].map((repo) => join(repoFolder(hfHome(), repo), 'snapshots', COMMITS[repo === T5 ? 't5' : repo === STDIT ? 'stdit' : 'vae']));
    const out = join(root, 'converted-fp16');
    const result = await cli(['models', 'convert', ...dirs, '-o', out, '--dtype', 'float16', '--name', 'tiny-fp16', '--config-vae', 'tiny', '--json'], { ONDEVICE_SORA_PYTHON: PYTHON });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('config stdit: tiny (config.json');
    expect(result.stderr).not.toContain('config vae:'); // named, not chosen
    expect(JSON.parse(result.stdout)).toMatchObject({ name: 'tiny-fp16', blocks: 32 });
    const loaded = await loadModel(out);
    expect(loaded.name).toBe('tiny-fp16');
    expect(new Set(loaded.blocks.map((b) => b.dtype))).toEqual(new Set(['float16']));
    expect(loaded.checkpoints?.find((c) => c.component === 'stdit')).toEqual({ component: 'stdit', repo: STDIT, revision: 'main', commit: COMMITS.stdit });
    const again = await cli(['models', 'convert', ...dirs, '-o', out], { ONDEVICE_SORA_PYTHON: PYTHON });
    expectOneLineError(again, ERROR_EXIT_CODES.IO, 'already exists (pass --overwrite');
  });
});

describe('models pull: a cache written by Python huggingface_hub is reused', () => {
  it('blobs/snapshots/refs laid out as huggingface_hub writes them: nothing is downloaded', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    const hfHome = join(root, 'hf-python');
    // The layout huggingface_hub documents: blobs named by etag (sha256 for LFS, git blob id otherwise),
    // snapshots/<commit>/<file> → ../../blobs/<etag>, refs/main holding the commit.
    await withHub(async (hub) => {
      for (const [component, repo, folder] of [['t5', T5, 't5-v1_1-xxl'], ['stdit', STDIT, 'OpenSora-STDiT-v3'], ['vae', VAE, 'OpenSora-VAE-v1.2']] as const) {
        const base = repoFolder(hfHome, repo);
        for (const file of await readdir(join(repositories, folder))) {
          const data = await readFile(join(repositories, folder, file));
          const lfs = /\.(safetensors|model)$/.test(file);
          const etag = lfs ? createHash('sha256').update(data).digest('hex') : createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
          await mkdir(join(base, 'blobs'), { recursive: true });
          await writeFile(join(base, 'blobs', etag), data);
          await mkdir(join(base, 'snapshots', COMMITS[component]), { recursive: true });
          await symlink(`../../blobs/${etag}`, join(base, 'snapshots', COMMITS[component], file));
        }
        if (component !== 't5') {
          await mkdir(join(base, 'refs'), { recursive: true });
          await writeFile(join(base, 'refs', 'main'), COMMITS[component]);
        }
      }
      const result = await pull(hub, hfHome, ['--download-only']);
      expect(result.code, result.stderr).toBe(0);
      expect(transferred(hub)).toEqual([]);
      expect(hub.requests.filter((r) => r.method === 'HEAD')).toEqual([]);
    });
  });
});

describe('models pull: the wire', () => {
  it('a gated repository: 401 without a token and 403 with a wrong one say what to do; the right token is sent to the hub only', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(
      async (hub) => {
        const hfHome = join(root, 'hf-gated');
        const anonymous = await pull(hub, hfHome, ['--download-only']);
        expectOneLineError(anonymous, ERROR_EXIT_CODES.DOWNLOAD, `${T5}: the hub answered 401`, `accept its terms at ${hub.url}/${T5}`, 'set HF_TOKEN', `${hub.url}/settings/tokens`);
        const wrong = await pull(hub, hfHome, ['--download-only'], { HF_TOKEN: 'hf_wrong' });
        expectOneLineError(wrong, ERROR_EXIT_CODES.DOWNLOAD, `${T5}: your token has no access (403)`, `${hub.url}/${T5}`);
        const before = hub.requests.length;
        const right = await pull(hub, hfHome, ['--download-only'], { HF_TOKEN: 'hf_right' });
        expect(right.code, right.stderr).toBe(0);
        const requests = hub.requests.slice(before);
        expect(requests.filter((r) => r.server === 'hub').every((r) => r.authorization === 'Bearer hf_right')).toBe(true);
        expect(requests.filter((r) => r.server === 'store').map((r) => r.authorization)).toEqual(requests.filter((r) => r.server === 'store').map(() => undefined));
        recordFaults({ badInputs: 2 });
      },
      { token: 'hf_right' },
    );
  });

  it('a connection cut mid-file is resumed with a range request, and the file is verified', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(async (hub) => {
      hub.faults.truncateOnce.add(`${STDIT}/model.safetensors`);
      const hfHome = join(root, 'hf-cut');
      const result = await pull(hub, hfHome, ['--download-only']);
      expect(result.code, result.stderr).toBe(0);
      const transfers = hub.requestsFor('/blobs/', 'store').filter((r) => r.status === 200 || r.status === 206);
      const size = (await stat(join(repositories, 'OpenSora-STDiT-v3', 'model.safetensors'))).size;
      const resumed = transfers.find((r) => r.range !== undefined);
      expect(resumed?.range).toMatch(/^bytes=\d+-$/);
      const offset = Number(/=(\d+)-/.exec(resumed!.range!)![1]);
      expect(offset).toBeGreaterThan(0);
      expect(offset).toBeLessThan(size);
      const blob = await readFile(join(repoFolder(hfHome, STDIT), 'snapshots', COMMITS.stdit, 'model.safetensors'));
      expect(blob.equals(await readFile(join(repositories, 'OpenSora-STDiT-v3', 'model.safetensors')))).toBe(true);
      recordFaults({ faultsInjected: 1 });
    });
  });

  it('a file whose bytes do not match the announced sha256 is deleted and reported', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(async (hub) => {
      hub.faults.wrongChecksum.add(`${VAE}/model.safetensors`);
      const hfHome = join(root, 'hf-checksum');
      const result = await pull(hub, hfHome, ['--download-only', '--quiet']);
      expectOneLineError(result, ERROR_EXIT_CODES.DOWNLOAD, `${VAE}/model.safetensors: sha256 `, "does not match the hub's", 'the downloaded file was deleted');
      const blobs = await readdir(join(repoFolder(hfHome, VAE), 'blobs'));
      const sha = createHash('sha256').update(await readFile(join(repositories, 'OpenSora-VAE-v1.2', 'model.safetensors'))).digest('hex');
      expect(blobs.filter((name) => name.startsWith(sha) || name.endsWith('.incomplete'))).toEqual([]);
      expect(await leftovers(join(hfHome, 'hub'))).toEqual([]);
      recordFaults({ faultsInjected: 1, filesLeftBehind: 0 });
    });
  });

  it('SIGTERM during a download keeps the partial file; the next pull resumes from its size', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(async (hub) => {
      const key = `${STDIT}/model.safetensors`;
      const stallAt = 100_000;
      hub.faults.stallAfter.set(key, stallAt);
      const hfHome = join(root, 'hf-interrupt');
      const child = spawn(process.execPath, [join(ROOT, 'bin', 'ondevice-sora'), 'models', 'pull', 'opensora-1.2', '--download-only'], {
        env: { ...process.env, ...hubEnv(hub, hfHome) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      const blobs = join(repoFolder(hfHome, STDIT), 'blobs');
      const partialSize = async (): Promise<number> => {
        const names = await readdir(blobs).catch(() => [] as string[]);
        const partial = names.find((name) => name.endsWith('.incomplete'));
        return partial === undefined ? 0 : (await stat(join(blobs, partial))).size;
      };
      // The hub sends the first bytes and then nothing: wait until the transfer has begun, then stop the pull.
      for (let waited = 0; !stderr.includes(`download ${key}: `) || hub.requestsFor('/blobs/', 'store').length === 0; waited += 50) {
        if (waited > 60_000) throw new Error(`the stalled transfer never started: ${stderr}`);
        await sleep(50);
      }
      await sleep(1000);
      child.kill('SIGTERM');
      expect(await exited).toBe(ERROR_EXIT_CODES.INTERRUPTED);
      expect(stderr.trimEnd().split('\n').at(-1)).toBe('error: interrupted; run the same command again to resume the download where it stopped');
      expect(await partialSize()).toBe(stallAt);
      expect((await readdir(join(hfHome, 'hub', '.locks'), { recursive: true })).filter((n) => n.endsWith('.lock'))).toEqual([]);

      hub.faults.stallAfter.delete(key);
      const resumed = await pull(hub, hfHome, ['--download-only']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stderr).toContain(`download ${key}: `);
      expect(resumed.stderr).toMatch(/resuming at 97\.7 KiB/);
      const ranges = hub.requestsFor('/blobs/', 'store').map((r) => r.range);
      expect(ranges).toContain(`bytes=${stallAt}-`);
      recordFaults({ faultsInjected: 1 });
    });
  });

  it('two pulls at once into one cache: one waits for the other, both succeed, one copy of each file', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(async (hub) => {
      hub.faults.slow.set(`${STDIT}/model.safetensors`, 20);
      const hfHome = join(root, 'hf-concurrent');
      const [a, b] = await Promise.all([pull(hub, hfHome, ['--download-only']), pull(hub, hfHome, ['--download-only'])]);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      expect(`${a.stderr}${b.stderr}`).toContain(`which is downloading ${STDIT}/model.safetensors`);
      const sha = createHash('sha256').update(await readFile(join(repositories, 'OpenSora-STDiT-v3', 'model.safetensors'))).digest('hex');
      const transfers = hub.requestsFor(`/blobs/${sha}`, 'store');
      expect(transfers).toHaveLength(1);
      expect(await leftovers(join(hfHome, 'hub'))).toEqual([]);
      recordFaults({ concurrentRuns: 2 });
    });
  });

  it('on a terminal (a pseudo-terminal from `script`): one redrawn line with a bar, bytes, rate and ETA', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(async (hub) => {
      hub.faults.slow.set(`${STDIT}/model.safetensors`, 20); // ~3 s for its 2.4 MiB
      const command = `${process.execPath} ${join(ROOT, 'bin', 'ondevice-sora')} models pull opensora-1.2 --download-only`;
      const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...process.env, ...hubEnv(hub, join(root, 'hf-tty')) } });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      expect(await new Promise((resolve) => child.on('close', resolve)), output).toBe(0);
      expect(output).toMatch(new RegExp(`\\rdownloading \\[[#-]{24}\\] [\\d.]+ [KM]iB/[\\d.]+ MiB  [\\d.]+ [KM]iB/s  ETA \\d+:\\d\\d  ${STDIT}/model.safetensors`));
      expect(output).toContain(`downloaded ${STDIT}/model.safetensors: 2.4 MiB in 0:0`);
    });
  });

  it('disk space is checked before the first byte', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    await withHub(async (hub) => {
      hub.faults.claimedSize.set(`${STDIT}/model.safetensors`, 2 ** 50);
      const result = await pull(hub, join(root, 'hf-full'), ['--download-only']);
      expectOneLineError(result, ERROR_EXIT_CODES.IO, 'not enough disk space: the download ', 'GiB free');
      expect(transferred(hub)).toEqual([]);
      expect(hub.requestsFor('/blobs/', 'store')).toEqual([]);
      recordFaults({ faultsInjected: 1 });
    });
  });
});

describe('models pull / convert: refused before any work', () => {
  it('an existing output, a bad flag, a Python without the packages, CoreML before it exists', async (context) => {
    skipWithoutPython(context);
    const taken = join(root, 'taken');
    await mkdir(taken);
    await withHub(async (hub) => {
      const hfHome = join(root, 'hf-refused');
      expectOneLineError(await pull(hub, hfHome, ['-o', taken]), ERROR_EXIT_CODES.IO, 'taken already exists (pass --overwrite');
      expectOneLineError(await pull(hub, hfHome, ['--dtype', 'int8']), ERROR_EXIT_CODES.USAGE, '--dtype: must be one of: float32, float16');
      expectOneLineError(await pull(hub, hfHome, ['--revision', 'nope/repo=main']), ERROR_EXIT_CODES.USAGE, '--revision: unknown repository "nope/repo"');
      // A Python that runs but finds none of the packages (no site-packages).
      const bare = join(root, 'bare-python');
      await writeFile(bare, `#!/bin/sh\nexec ${PYTHON} -S "$@"\n`, { mode: 0o755 });
      expectOneLineError(
        await pull(hub, hfHome, ['--python', bare, '-o', join(root, 'never')]),
        ERROR_EXIT_CODES.DEPENDENCY,
        'models pull needs Python with torch, onnx, numpy and jsonschema',
        `${bare} lacks torch, onnx, numpy and jsonschema`,
        'sudo apt-get install python3-torch python3-onnx python3-numpy python3-jsonschema',
        'pip install torch onnx numpy jsonschema',
      );
      expectOneLineError(
        await cli(['models', 'convert', '--stdit', 'x', '--t5', 'y', '--vae', 'z', '-o', join(root, 'never')], { ONDEVICE_SORA_PYTHON: join(root, 'no-python') }),
        ERROR_EXIT_CODES.INPUT,
        '--t5 y: no such folder',
      );
      expect(hub.requests).toEqual([]);
      expect(existsSync(join(root, 'never'))).toBe(false);
      recordFaults({ badInputs: 5 });
    });
  });

  it('--format coreml: pull then convert into one CoreML package per contract block (with the coremltools venv)', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    const venv = join(ROOT, '.venv-coreml', 'bin', 'python');
    if (!existsSync(venv)) context.skip('no .venv-coreml (scripts/coreml-venv.sh makes it): coremltools is needed for CoreML conversion');
    await withHub(async (hub) => {
      const out = join(root, 'coreml');
      const bare = await pull(hub, join(root, 'hf-coreml'), ['--format', 'coreml', '-o', out]);
      // Debian's python has no coremltools: one line naming the pip package, nothing downloaded.
      if (bare.code !== 0) expectOneLineError(bare, ERROR_EXIT_CODES.DEPENDENCY, 'coremltools');
      const result = await pull(hub, join(root, 'hf-coreml'), ['--format', 'coreml', '--python', venv, '-o', out, '--overwrite']);
      expect(result.code, result.stderr).toBe(0);
      const model = await loadModel(out);
      expect(model.blocks.every((block) => block.format === 'coreml')).toBe(true);
      expect(model.blocks.map((block) => block.name)).toContain('stdit3_part1');
      for (const block of model.blocks) {
        expect(block.files.map((file) => file.relativePath)).toEqual([expect.stringMatching(/\.mlpackage$/)]);
        expect(existsSync(join(out, block.files[0]!.relativePath, 'Manifest.json')), block.name).toBe(true);
      }
    });
  });
});

describe('models convert: bad checkpoints, one line each, nothing left behind', () => {
  it('folders without config.json, a missing component, a broken checkpoint', { timeout: SLOW }, async (context) => {
    skipWithoutPython(context);
    const env = { ONDEVICE_SORA_PYTHON: PYTHON };
    const out = join(root, 'bad-out');
    const dir = (name: string) => join(repositories, name);
    const plain = join(root, 'plain');
    await mkdir(plain, { recursive: true });
    expectOneLineError(await cli(['models', 'convert', plain, '-o', out], env), ERROR_EXIT_CODES.USAGE, 'plain: no config.json naming an STDiT3, T5 or VideoAutoencoderPipeline model');
    expectOneLineError(await cli(['models', 'convert', dir('OpenSora-STDiT-v3'), dir('OpenSora-VAE-v1.2'), '-o', out], env), ERROR_EXIT_CODES.USAGE, 'no t5 checkpoint folder given');
    // An STDiT folder whose weights file is cut short.
    const broken = join(root, 'broken-stdit');
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, 'config.json'), await readFile(join(dir('OpenSora-STDiT-v3'), 'config.json')));
    await writeFile(join(broken, 'model.safetensors'), (await readFile(join(dir('OpenSora-STDiT-v3'), 'model.safetensors'))).subarray(0, 5000));
    const result = await cli(['models', 'convert', broken, dir('t5-v1_1-xxl'), dir('OpenSora-VAE-v1.2'), '-o', out, '--quiet'], env);
    expectOneLineError(result, ERROR_EXIT_CODES.INPUT, 'model.safetensors: ');
    expect(existsSync(out)).toBe(false);
    expect((await readdir(root)).filter((name) => name.includes('.part'))).toEqual([]);
    recordFaults({ badInputs: 3, filesLeftBehind: 0 });
  });
});
