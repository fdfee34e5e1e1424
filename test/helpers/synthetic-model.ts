/**
 * The synthetic model of the CI-DL tests: the tiny T5 and VAE with an 8-block STDiT of ~19 MB per block, made by
 * scripts/make_synthetic_model.py (Debian's python3-torch, as the Python tests use). Making it takes ~10 s, so the
 * folder is kept in the temp dir under a hash of everything that shapes it and reused while that is unchanged.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './cli.js';

const PYTHON = '/usr/bin/python3';
const run = promisify(execFile);

/** Why the model cannot be made here (what scripts/sora/dependencies.py finds missing), or null. */
export async function syntheticModelProblem(): Promise<string | null> {
  if (!existsSync(PYTHON)) return `${PYTHON} not found (install python3-torch and friends, see .ci/run)`;
  try {
    await run(PYTHON, [join(ROOT, 'scripts', 'sora', 'dependencies.py')]);
    return null;
  } catch (error) {
    return String((error as { stdout?: unknown }).stdout ?? error).trim();
  }
}

/** The generator, the Python modules it imports and the tiny model it copies from. */
async function inputsHash(): Promise<string> {
  const hash = createHash('sha256');
  const sora = join(ROOT, 'scripts', 'sora');
  const files = [
    join(ROOT, 'scripts', 'make_synthetic_model.py'),
    join(ROOT, 'models', 'tiny', 'manifest.json'),
    ...(await readdir(sora)).filter((name) => name.endsWith('.py')).sort().map((name) => join(sora, name)),
  ];
  for (const file of files) hash.update(file).update(await readFile(file));
  return hash.digest('hex').slice(0, 16);
}

export async function syntheticModel(): Promise<string> {
  const dir = join(tmpdir(), `ondevice-sora-synthetic-${await inputsHash()}`);
  if (existsSync(join(dir, 'manifest.json'))) return dir;
  // Built beside and renamed into place, so a run killed halfway never leaves a folder that looks complete.
  const partial = `${dir}.partial-${process.pid}`;
  try {
    await run(PYTHON, [join(ROOT, 'scripts', 'make_synthetic_model.py'), '--out', partial], { cwd: ROOT });
    await rename(partial, dir).catch((error: unknown) => {
      if (!existsSync(join(dir, 'manifest.json'))) throw error; // another test run finished first
    });
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
  return dir;
}
