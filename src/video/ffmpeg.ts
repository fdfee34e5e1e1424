import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { errorMessage, SoraError } from '../errors.js';
import { findOnPath, isExecutable } from './executables.js';

export type FfmpegSource = '--ffmpeg' | 'FFMPEG_PATH' | 'PATH' | '@ffmpeg-installer/ffmpeg';

export interface Ffmpeg {
  readonly path: string;
  readonly source: FfmpegSource;
  /** As `ffmpeg -version` reports it, e.g. "5.1.9-0+deb12u1". */
  readonly version: string;
}

const run = promisify(execFile);

/**
 * The ffmpeg to encode with, in order: `--ffmpeg`, `FFMPEG_PATH`, `ffmpeg` on PATH, the binary bundled by
 * `@ffmpeg-installer/ffmpeg` (a dependency, so a fresh install always has one; it is old, hence last).
 * An explicitly named ffmpeg that does not run is an error, not a reason to fall back: the user asked for it.
 */
export async function findFfmpeg(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Ffmpeg> {
  if (flag !== undefined) return probe(flag, '--ffmpeg');
  if (env.FFMPEG_PATH) return probe(env.FFMPEG_PATH, 'FFMPEG_PATH');
  const onPath = findOnPath('ffmpeg', env.PATH ?? '');
  if (onPath !== undefined) return probe(onPath, 'PATH');
  const bundled = bundledFfmpeg();
  if (bundled !== undefined) return probe(bundled, '@ffmpeg-installer/ffmpeg');
  throw new SoraError('DEPENDENCY', 'ffmpeg not found: install it, or pass --ffmpeg <path>, or set FFMPEG_PATH');
}

async function probe(path: string, source: FfmpegSource): Promise<Ffmpeg> {
  try {
    const { stdout } = await run(path, ['-hide_banner', '-version'], { timeout: 15_000 });
    const version = /^ffmpeg version (\S+)/.exec(stdout)?.[1];
    if (version === undefined) throw new Error('its -version output does not start with "ffmpeg version"');
    return { path, source, version };
  } catch (error) {
    const reason = errorMessage(error).split('\n', 1)[0];
    throw new SoraError('DEPENDENCY', `ffmpeg from ${source} (${path}) does not run: ${reason}`, { cause: error });
  }
}

function bundledFfmpeg(): string | undefined {
  try {
    // The package throws (a string) on platforms it has no binary for.
    const installer = createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string };
    return installer.path;
  } catch {
    return undefined;
  }
}

/**
 * The ffprobe that goes with an ffmpeg: the one beside it, else the first on PATH; undefined when there is none
 * (the bundled ffmpeg comes without one). Used to count the frames of what ffmpeg wrote.
 */
export function findFfprobe(ffmpegPath: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const name = process.platform === 'win32' ? 'ffprobe.exe' : 'ffprobe';
  const beside = join(dirname(ffmpegPath), name);
  return isExecutable(beside) ? beside : findOnPath('ffprobe', env.PATH ?? '');
}
