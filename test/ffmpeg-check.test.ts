/**
 * generate finds ffmpeg before any work but runs its `-version` probe beside the model's first blocks (start-up time,
 * issue 17): one that is missing fails at once, one that is there but is not ffmpeg stops the job; either way with
 * one DEPENDENCY line and nothing written.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import { cli, expectOneLineError } from './helpers/cli.js';
import { useCaseFolders } from './helpers/case-folders.js';

const FAST = ['--steps', '1', '--resolution', '128x128', '--seed', '1'];
const { caseDir } = useCaseFolders('sora-ffmpeg-check-');

describe('generate with an ffmpeg that cannot encode', () => {
  it('a named ffmpeg that is not there: exit 8 naming it, nothing written', async () => {
    const dir = await caseDir();
    const missing = join(dir, 'no-such-ffmpeg');
    const result = await cli(['generate', 'a red ball', '-o', join(dir, 'x.mp4'), ...FAST, '--ffmpeg', missing]);
    expectOneLineError(result, ERROR_EXIT_CODES.DEPENDENCY, missing, 'no executable file there');
    expect(await readdir(dir)).toEqual([]);
  });

  it.skipIf(process.platform === 'win32')('an executable that is not ffmpeg: exit 8 naming it, nothing written', async () => {
    const dir = await caseDir();
    const impostor = join(dir, 'not-ffmpeg');
    await writeFile(impostor, '#!/bin/sh\necho hello\n', { mode: 0o755 });
    // --quiet: the job has started (its progress lines would precede the error).
    const result = await cli(['generate', 'a red ball', '-o', join(dir, 'x.mp4'), ...FAST, '--ffmpeg', impostor, '--quiet']);
    expectOneLineError(result, ERROR_EXIT_CODES.DEPENDENCY, impostor, 'does not start with "ffmpeg version"');
    expect(await readdir(dir)).toEqual(['not-ffmpeg']);
  });
});
