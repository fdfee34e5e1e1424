import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';
import { findFfprobe } from './ffmpeg.js';
import { spawnTiedToParent } from './tied-child.js';

import type { VideoFormat } from './video-formats.js';

export { VIDEO_FORMATS, type VideoFormat } from './video-formats.js';

export interface VideoSpec {
  readonly format: VideoFormat;
  readonly width: number;
  readonly height: number;
  readonly fps: number;
}

/** Packed RGB24 frames, `width·height·3` bytes each. */
export type Frames = readonly Uint8Array[];

/** What a writer takes: the frames all at once, or as they are decoded (frame-stream.ts). */
export type FrameSource = Frames | AsyncIterable<Uint8Array>;

export interface VideoTarget {
  /** File to write, or the existing folder for `frames`. */
  readonly path: string;
  /** Needed for every format but `frames`. */
  readonly ffmpegPath?: string;
  /** Stops the writing (ffmpeg is killed) and fails with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * Writes the frames: a video file for mp4/webm/gif (encoded by ffmpeg), PNG files for `frames`. The container is
 * named explicitly because the path is usually a temporary name without the real extension.
 */
export async function writeVideo(frames: FrameSource, spec: VideoSpec, target: VideoTarget): Promise<void> {
  if (spec.format === 'frames') return writePngFrames(frames, spec, target);
  if (target.ffmpegPath === undefined) throw new SoraError('INTERNAL', `writing ${spec.format} needs ffmpeg`);
  return encodeWithFfmpeg(frames, spec, { ...target, ffmpegPath: target.ffmpegPath });
}

const ENCODER_ARGS: Record<Exclude<VideoFormat, 'frames'>, readonly string[]> = {
  // yuv420p and +faststart: what browsers and phones play, and playable while still downloading.
  mp4: ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', '-f', 'mp4'],
  // -b:v 0 makes -crf a constant-quality target, libvpx's recommended mode.
  webm: ['-c:v', 'libvpx-vp9', '-pix_fmt', 'yuv420p', '-b:v', '0', '-crf', '31', '-f', 'webm'],
  // A palette made from this very video beats GIF's default web palette by far.
  gif: ['-filter_complex', 'split[a][b];[a]palettegen[p];[b][p]paletteuse', '-loop', '0', '-f', 'gif'],
};

/** `frame_00000.png`, … — zero-padded so they sort. */
export function pngFrameName(index: number): string {
  return `frame_${String(index).padStart(5, '0')}.png`;
}

async function writePngFrames(frames: FrameSource, spec: VideoSpec, { path, signal }: VideoTarget): Promise<void> {
  const raw = { width: spec.width, height: spec.height, channels: 3 } as const;
  const { default: sharp } = await import('sharp'); // on first use: libvips costs ~100 ms at every start
  let index = 0;
  for await (const frame of frames) {
    signal?.throwIfAborted();
    const file = join(path, pngFrameName(index));
    await sharp(frame, { raw })
      .png()
      .toFile(file)
      .catch((error: unknown) => {
        throw new SoraError('IO', `cannot write ${displayPath(file)}: ${libvipsReason(error)}`, { cause: error });
      });
    index++;
  }
}

/**
 * sharp's errors carry no errno code, only libvips' lines (`…: write error`, `system error: No space left on
 * device`, …): the system's own words are the useful part.
 */
function libvipsReason(error: unknown): string {
  const message = errorMessage(error);
  return /system error: (.+)/.exec(message)?.[1]?.trim() ?? message.split('\n')[0]!;
}

async function encodeWithFfmpeg(
  frames: FrameSource,
  spec: VideoSpec,
  { path, ffmpegPath, signal }: VideoTarget & { readonly ffmpegPath: string },
): Promise<void> {
  const format = spec.format as Exclude<VideoFormat, 'frames'>;
  const args = [
    ...['-hide_banner', '-loglevel', 'error'],
    ...['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${spec.width}x${spec.height}`, '-r', String(spec.fps)],
    ...['-i', 'pipe:0'],
    ...ENCODER_ARGS[format],
    ...['-y', path],
  ];
  const child = spawnTiedToParent(ffmpegPath, args, { stdio: ['pipe', 'ignore', 'pipe'], ...(signal && { signal }) });
  if (child.stdin === null || child.stderr === null) throw new SoraError('INTERNAL', 'ffmpeg started without pipes');
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4096);
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  // If ffmpeg dies early, writing fails with EPIPE; its exit status and message are the useful error then.
  const written = pipeline(Readable.from(frames), child.stdin).then(
    () => undefined,
    (error: unknown) => error,
  );
  let code: number | null;
  try {
    code = await exited;
  } catch (error) {
    signal?.throwIfAborted();
    throw new SoraError('DEPENDENCY', `cannot start ffmpeg (${ffmpegPath}): ${errorMessage(error)}`, {
      cause: error,
    });
  }
  const writeError = await written;
  signal?.throwIfAborted();
  if (code !== 0) {
    const reason = stderr.trim().split('\n').pop() || `exit status ${code}`;
    throw new SoraError('IO', `ffmpeg could not write ${format}: ${reason}`);
  }
  if (writeError !== undefined) {
    throw new SoraError('IO', `cannot send frames to ffmpeg: ${errorMessage(writeError)}`, { cause: writeError });
  }
  // An exit status of 0 is not proof: an empty file is never a video.
  const bytes = (await stat(path).catch(() => undefined))?.size ?? 0;
  if (bytes === 0) throw new SoraError('IO', `ffmpeg (${ffmpegPath}) exited 0 but wrote no ${format} data`);
}

const runProbe = promisify(execFile);

/**
 * Before an output is committed the video must hold every frame that was sent: an MP4 counted in this process
 * (mp4-frames.ts), the other formats by an ffprobe where one is found. Kept out of writeVideo (and so out of the
 * timings bench reports): starting ffprobe costs about as much as encoding a short clip.
 */
export async function checkFrameCount(path: string, format: VideoFormat, expectedFrames: number, ffmpegPath: string | undefined): Promise<void> {
  if (format === 'frames' || ffmpegPath === undefined) return;
  const frames = format === 'mp4' ? await countMp4Frames(path, ffmpegPath) : await probeFrames(path, ffmpegPath);
  if (frames === undefined || frames === expectedFrames) return;
  const wrote = Number.isNaN(frames) ? 'no' : String(frames);
  throw new SoraError('IO', `ffmpeg (${ffmpegPath}) exited 0 but wrote ${wrote} of ${expectedFrames} frames`);
}

async function countMp4Frames(path: string, ffmpegPath: string): Promise<number> {
  const { mp4FrameCount } = await import('./mp4-frames.js');
  const count = await mp4FrameCount(path);
  if ('frames' in count) return count.frames;
  throw new SoraError('IO', `ffmpeg (${ffmpegPath}) exited 0 but what it wrote is no readable MP4: ${count.unreadable}`);
}

/** The frame count ffprobe reads; undefined without an ffprobe. */
async function probeFrames(path: string, ffmpegPath: string): Promise<number | undefined> {
  const ffprobe = findFfprobe(ffmpegPath);
  if (ffprobe === undefined) return undefined;
  const args = ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', path];
  try {
    const { stdout } = await runProbe(ffprobe, args, { timeout: 60_000 });
    return Number.parseInt(stdout.trim(), 10);
  } catch (error) {
    const reason = errorMessage(error).trim().split('\n').pop();
    throw new SoraError('IO', `ffmpeg (${ffmpegPath}) exited 0 but ${ffprobe} cannot read what it wrote: ${reason}`, { cause: error });
  }
}
