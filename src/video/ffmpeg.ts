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
  return probeFfmpeg(locateFfmpeg(flag, env));
}

/**
 * Where findFfmpeg looks, without running what it finds (path lookups only): a command can start probeFfmpeg
 * beside other start-up work and use the path meanwhile.
 */
export function locateFfmpeg(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Omit<Ffmpeg, 'version'> {
  if (flag !== undefined) return named(flag, '--ffmpeg', env);
  if (env.FFMPEG_PATH) return named(env.FFMPEG_PATH, 'FFMPEG_PATH', env);
  const onPath = findOnPath('ffmpeg', env.PATH ?? '');
  if (onPath !== undefined) return { path: onPath, source: 'PATH' };
  const bundled = bundledFfmpeg();
  if (bundled !== undefined) return { path: bundled, source: '@ffmpeg-installer/ffmpeg' };
  throw new SoraError('DEPENDENCY', 'ffmpeg not found: install it, or pass --ffmpeg <path>, or set FFMPEG_PATH');
}

/** An ffmpeg the user named: missing is an error now, before any work, as it would be when run (a bare name: on PATH). */
function named(path: string, source: FfmpegSource, env: NodeJS.ProcessEnv): Omit<Ffmpeg, 'version'> {
  const bare = !/[/\\]/.test(path);
  const there = bare ? findOnPath(path, env.PATH ?? '') !== undefined : isExecutable(path);
  if (!there) throw new SoraError('DEPENDENCY', `ffmpeg from ${source} (${path}) does not run: no executable file there`);
  return { path, source };
}

/** An ffmpeg located now and probed in the background, for a command that needs it only once frames exist. */
export interface FfmpegCheck {
  readonly path: string;
  /** Settles with findFfmpeg's result. */
  readonly probe: Promise<Ffmpeg>;
  /** Fires, with the probe's error as its reason, if the ffmpeg does not run. */
  readonly failed: AbortSignal;
}

/**
 * locateFfmpeg now (not found fails at once), probeFfmpeg meanwhile: `ffmpeg -version` is a child process of
 * ~50-150 ms that need not hold up the first block; a job passes `failed` on as its signal to stop at its next block.
 */
export function checkFfmpegMeanwhile(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): FfmpegCheck {
  const located = locateFfmpeg(flag, env);
  const failed = new AbortController();
  const probe = probeFfmpeg(located);
  probe.catch((error: unknown) => failed.abort(error));
  return { path: located.path, probe, failed: failed.signal };
}

/** Runs `ffmpeg -version`: an ffmpeg that does not run (or is not ffmpeg) is a DEPENDENCY error naming its source. */
export async function probeFfmpeg({ path, source }: Omit<Ffmpeg, 'version'>): Promise<Ffmpeg> {
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
 * (the bundled ffmpeg comes without one). Used to count the frames of a WebM or GIF that ffmpeg wrote (MP4s are counted
 * in this process: mp4-frames.ts).
 */
export function findFfprobe(ffmpegPath: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const name = process.platform === 'win32' ? 'ffprobe.exe' : 'ffprobe';
  const beside = join(dirname(ffmpegPath), name);
  return isExecutable(beside) ? beside : findOnPath('ffprobe', env.PATH ?? '');
}
