/** Reads a video file back into packed RGB24 frames at its own size, with ffmpeg. */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';
import type { VideoFrames } from './frame-analysis.js';

/** The input stream's size from ffmpeg's stream line, e.g. "Stream #0:0…: Video: h264 (High) (avc1 / 0x…), yuv420p(…), 64x64 [SAR 1:1 …], 24 fps". */
const STREAM_SIZE = /Stream #\d+:\d+[^\n]*?: Video: [^\n]*?, (\d+)x(\d+)[\s,]/;

export async function decodeVideo(ffmpegPath: string, path: string): Promise<VideoFrames> {
  const file = resolve(path);
  const info = await stat(file).catch(() => undefined);
  if (info?.isFile() !== true) throw new SoraError('INPUT', `--video: ${displayPath(file)} is not a file`);

  // -nostats: no progress lines in stderr, which is parsed for the stream size; first video stream only.
  const args = ['-hide_banner', '-nostdin', '-nostats', '-i', file, '-map', '0:v:0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'];
  const child = spawn(ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  let code: number | null;
  try {
    code = await new Promise<number | null>((done, fail) => {
      child.once('error', fail);
      child.once('close', done);
    });
  } catch (error) {
    throw new SoraError('DEPENDENCY', `cannot start ffmpeg (${ffmpegPath}): ${errorMessage(error)}`, { cause: error });
  }
  if (code !== 0) {
    const reason = stderr.trim().split('\n').pop() || `exit status ${code}`;
    throw new SoraError('INPUT', `--video: ffmpeg cannot decode ${displayPath(file)}: ${reason}`);
  }
  const size = STREAM_SIZE.exec(stderr);
  if (size === null) throw new SoraError('INPUT', `--video: ${displayPath(file)} has no video stream ffmpeg reports a size for`);
  const width = Number(size[1]);
  const height = Number(size[2]);
  const bytes = Buffer.concat(chunks);
  const frameBytes = width * height * 3;
  if (bytes.length === 0 || bytes.length % frameBytes !== 0) {
    throw new SoraError('INPUT', `--video: ffmpeg decoded ${bytes.length} bytes from ${displayPath(file)}, not whole ${width}x${height} frames`);
  }
  const frames = Array.from({ length: bytes.length / frameBytes }, (_, i) => bytes.subarray(i * frameBytes, (i + 1) * frameBytes));
  return { width, height, frames };
}
