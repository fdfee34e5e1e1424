/**
 * The CoreML parts of the built CLI that run anywhere: `doctor --model` on a folder of CoreML packages (which macOS
 * they need; here no Mac, so it says so), and `models cache prune` on a compile cache. The packages are real
 * .mlpackage folders (test/helpers/coreml-package.ts) with chosen specification versions.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requiredBlocks } from '../src/model/contract.js';
import { assertBuilt, cli } from './helpers/cli.js';
import { writeMlpackage } from './helpers/coreml-package.js';
import { tempDir } from './helpers/model-folder.js';

let root = '';
beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-coreml-cli-');
});
afterAll(async () => rm(root, { recursive: true, force: true }));

interface DoctorCheck {
  readonly name: string;
  readonly level: string;
  readonly detail: string;
}

/** A folder of the 102 published package names, macOS 14's spec but stdit3_part2 at macOS 15's (as in the export scripts). */
async function publishedFolder(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const block of requiredBlocks(24, 28)) {
    writeMlpackage(join(dir, `${block.name}.mlpackage`), { specificationVersion: block.name === 'stdit3_part2' ? 9 : 8 });
  }
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
    await copyFile(new URL(`fixtures/tokenizer/${name}`, import.meta.url), join(dir, name));
  }
}

describe('doctor --model on CoreML packages', () => {
  it.skipIf(process.platform === 'darwin')('names the macOS the packages need and the package needing it; off macOS a warning', async () => {
    const dir = join(root, 'published');
    await publishedFolder(dir);
    const result = await cli(['doctor', '--model', dir, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const checks = (JSON.parse(result.stdout) as { checks: DoctorCheck[] }).checks;
    expect(checks.find((check) => check.name === 'coreml-model')).toMatchObject({
      level: 'warn',
      detail: `${dir}: 102 CoreML packages need macOS 15.0 (stdit3_part2, CoreML specification 9); this machine is not a Mac`,
    });
  });

  it('an ONNX folder has no CoreML packages; a folder that does not load fails the check, naming it', async () => {
    const onnx = await cli(['doctor', '--model', 'models/tiny', '--json']);
    const tiny = (JSON.parse(onnx.stdout) as { checks: DoctorCheck[] }).checks.find((check) => check.name === 'coreml-model');
    expect(tiny).toMatchObject({ level: 'ok', detail: 'models/tiny: no CoreML packages (runs with --backend onnx)' });
    const missing = await cli(['doctor', '--model', join(root, 'nowhere')]);
    expect(missing.code).toBe(8);
    expect(missing.stdout).toMatch(/coreml-model +FAIL +.*nowhere: model folder does not exist/);
  });
});

describe('models cache prune', () => {
  it('removes compiled models no entry refers to, and nothing else in the folder', async () => {
    const cache = join(root, 'xdg', 'ondevice-sora', 'coreml');
    for (const name of ['stdit3_ST_0-0123456789abcdef0123456789abcdef.mlmodelc', 'vae_spatial_part1-fedcba9876543210fedcba9876543210.mlmodelc']) {
      mkdirSync(join(cache, name, 'weights'), { recursive: true });
      writeFileSync(join(cache, name, 'weights', 'weight.bin'), Buffer.alloc(1024));
    }
    writeFileSync(join(cache, 'README.txt'), 'mine, not the cache’s');
    const result = await cli(['models', 'cache', 'prune', '--json'], { XDG_CACHE_HOME: join(root, 'xdg') });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ freedBytes: 2048, kept: { compiledModels: 0, bytes: 0 } });
    expect(readdirSync(cache)).toEqual(['README.txt']);
    const bad = await cli(['models', 'cache', 'prune', '--unused-days', 'soon'], { XDG_CACHE_HOME: join(root, 'xdg') });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--unused-days');
    expect(existsSync(join(cache, 'README.txt'))).toBe(true);
  });
});
