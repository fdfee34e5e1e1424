/** src/package-root.ts: the files the package ships beside its code, found from any module (dist/ runs it bundled). */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMPRESS_SCRIPT } from '../src/convert/compress-model.js';
import { CONVERTER_SCRIPT } from '../src/convert/run-converter.js';
import { SHIPPED_MODELS } from '../src/model/default-model.js';
import { PACKAGE_ROOT, packagePath } from '../src/package-root.js';
import { ROOT } from './helpers/cli.js';

describe('PACKAGE_ROOT', () => {
  it('is the folder of the package.json above the module', () => {
    expect(PACKAGE_ROOT).toBe(resolve(ROOT));
    expect(packagePath('bin', 'ondevice-sora')).toBe(resolve(ROOT, 'bin', 'ondevice-sora'));
  });

  it('finds the shipped models and scripts', () => {
    for (const path of [SHIPPED_MODELS.shapes, SHIPPED_MODELS.tiny, CONVERTER_SCRIPT, COMPRESS_SCRIPT]) expect(existsSync(path), path).toBe(true);
  });
});
