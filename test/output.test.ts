import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeEach, describe, expect, it } from 'vitest';
import { OutputFiles } from '../src/video/output.js';
import { sidecarPathFor } from '../src/video/sidecar.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sora-output-'));
});

describe('sidecar path', () => {
  it('sits beside the output with the same stem', () => {
    expect(sidecarPathFor('/a/out.mp4')).toBe('/a/out.json');
    expect(sidecarPathFor('clip.v2.webm')).toBe('clip.v2.json');
    expect(sidecarPathFor('/a/frames/')).toBe('/a/frames.json');
  });
});

describe('atomic output', () => {
  it('writes under a temporary name in the same folder and renames both files on commit', async () => {
    const path = join(dir, 'out.mp4');
    const output = await OutputFiles.prepare(path, join(dir, 'out.json'), 'file', false, 'test');
    expect(output.tempPath.startsWith(join(dir, '.out.mp4.'))).toBe(true);
    await writeFile(output.tempPath, 'video bytes');
    expect(await readdir(dir)).not.toContain('out.mp4');
    await output.commit('{"seed": 1}\n');
    expect((await readdir(dir)).sort()).toEqual(['out.json', 'out.mp4']);
    expect(await readFile(path, 'utf8')).toBe('video bytes');
    expect(await readFile(join(dir, 'out.json'), 'utf8')).toBe('{"seed": 1}\n');
  });

  it('leaves nothing behind when discarded after a failure', async () => {
    const output = await OutputFiles.prepare(join(dir, 'out.mp4'), join(dir, 'out.json'), 'file', false, 'test');
    await writeFile(output.tempPath, 'half a video');
    await output.discard();
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses an existing output or sidecar unless overwrite, and leaves them untouched', async () => {
    const path = join(dir, 'out.mp4');
    await writeFile(path, 'old video');
    await expect(OutputFiles.prepare(path, join(dir, 'out.json'), 'file', false, 'test')).rejects.toMatchObject({
      code: 'IO',
      message: `${path} already exists (pass --overwrite to replace it)`,
    });
    await writeFile(join(dir, 'other.json'), 'old sidecar');
    await expect(
      OutputFiles.prepare(join(dir, 'other.mp4'), join(dir, 'other.json'), 'file', false, 'test'),
    ).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining('other.json is not a sidecar this tool wrote') });
    expect((await readdir(dir)).sort()).toEqual(['other.json', 'out.mp4']);
    expect(await readFile(path, 'utf8')).toBe('old video');

    const output = await OutputFiles.prepare(path, join(dir, 'out.json'), 'file', true, 'test');
    await writeFile(output.tempPath, 'new video');
    await output.commit('{}');
    expect(await readFile(path, 'utf8')).toBe('new video');
  });

  it('replaces a frames folder on overwrite only when it holds nothing but frames its sidecar claims', async () => {
    const path = join(dir, 'frames');
    await mkdir(path);
    await writeFile(join(path, 'frame_00000.png'), 'x');
    await writeFile(join(path, 'frame_00001.png'), 'x');
    const sidecar = { output: { path, format: 'frames', bytes: 2 }, prompt: 'p', versions: { tool: '0.1.0' } };
    await writeFile(join(dir, 'frames.json'), JSON.stringify(sidecar));
    const output = await OutputFiles.prepare(path, join(dir, 'frames.json'), 'directory', true, 'test');
    await writeFile(join(output.tempPath, 'frame_00000.png'), 'y');
    await output.commit('{}');
    expect(await readdir(path)).toEqual(['frame_00000.png']);

    await writeFile(join(path, 'notes.txt'), 'mine');
    await writeFile(join(dir, 'frames.json'), JSON.stringify(sidecar));
    await expect(OutputFiles.prepare(path, join(dir, 'frames.json'), 'directory', true, 'test')).rejects.toMatchObject({
      code: 'IO',
      message: `${path} is a folder holding notes.txt, which is not a frame this tool wrote; --overwrite replaces only what this tool wrote`,
    });
    expect((await readdir(path)).sort()).toEqual(['frame_00000.png', 'notes.txt']);
  });

  it('fails with an IO error naming the folder when it is missing or not a folder', async () => {
    const missing = join(dir, 'no-such-folder');
    await expect(
      OutputFiles.prepare(join(missing, 'out.mp4'), join(missing, 'out.json'), 'file', false, 'test'),
    ).rejects.toMatchObject({ code: 'IO', message: `output folder ${missing} does not exist` });
    const file = join(dir, 'a-file');
    await writeFile(file, '');
    await expect(
      OutputFiles.prepare(join(file, 'out.mp4'), join(file, 'out.json'), 'file', false, 'test'),
    ).rejects.toMatchObject({ code: 'IO', message: `output folder ${file} is not a folder` });
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('on %s removes the temporary file and its claims and exits %i', async (signal, status) => {
    const script = fileURLToPath(new URL('./fixtures/scripts/interrupted-output.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, join(dir, 'out.mp4'), join(dir, 'out.json')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const tempPath = line.toString().trim();
    expect((await readdir(dir)).sort()).toEqual(['.out.json.lock', tempPath.slice(dir.length + 1), '.out.mp4.lock']);
    child.kill(signal);
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(status);
    expect(await readdir(dir)).toEqual([]);
  });
});
