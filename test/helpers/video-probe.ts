import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ProbedVideo {
  readonly codec: string;
  readonly width: number;
  readonly height: number;
  /** Frames per second as a fraction string, e.g. "24/1". */
  readonly frameRate: string;
  readonly frames: number;
  readonly pixelFormat: string;
}

/**
 * Reads back what we wrote: with Debian's ffprobe when it is installed (an independent reader), otherwise with the
 * found ffmpeg, decoding to raw frames to count them.
 */
export async function probeVideo(ffmpeg: string, path: string): Promise<ProbedVideo> {
  const hasFfprobe = await run('ffprobe', ['-version']).then(
    () => true,
    () => false,
  );
  return hasFfprobe ? ffprobe(path) : probeWithFfmpeg(ffmpeg, path);
}

async function ffprobe(path: string): Promise<ProbedVideo> {
  const { stdout } = await run('ffprobe', [
    ...['-v', 'error', '-select_streams', 'v:0', '-count_frames'],
    ...['-show_entries', 'stream=codec_name,width,height,r_frame_rate,nb_read_frames,pix_fmt', '-of', 'json', path],
  ]);
  const stream = (JSON.parse(stdout) as { streams: Record<string, string | number>[] }).streams[0]!;
  return {
    codec: String(stream.codec_name),
    width: Number(stream.width),
    height: Number(stream.height),
    frameRate: String(stream.r_frame_rate),
    frames: Number(stream.nb_read_frames),
    pixelFormat: String(stream.pix_fmt),
  };
}

/** Decodes a video back to packed RGB24 frames with the given ffmpeg (works without ffprobe). */
export async function decodeRgbFrames(ffmpeg: string, path: string, width: number, height: number): Promise<Buffer[]> {
  const { stdout } = await run(ffmpeg, ['-v', 'error', '-i', path, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
    encoding: 'buffer',
    maxBuffer: 1 << 30,
  });
  const size = width * height * 3;
  if (stdout.length % size !== 0) throw new Error(`decoded ${stdout.length} bytes, not a multiple of ${size}`);
  return Array.from({ length: stdout.length / size }, (_, i) => stdout.subarray(i * size, (i + 1) * size));
}

async function probeWithFfmpeg(ffmpeg: string, path: string): Promise<ProbedVideo> {
  const { stderr } = await run(ffmpeg, ['-hide_banner', '-i', path, '-f', 'null', '-']);
  // e.g. "Stream #0:0: Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 64x48, 24 fps, …"
  const stream = /Video: (\w+).*?, (\w+)(?:\([^)]*\))?, (\d+)x(\d+).*?, ([\d.]+) fps/.exec(stderr);
  if (stream === null) throw new Error(`no video stream in ${path}:\n${stderr}`);
  const [, codec = '', pixelFormat = '', width = '0', height = '0', fps = '0'] = stream;
  const frames = await decodeRgbFrames(ffmpeg, path, Number(width), Number(height));
  return {
    codec,
    width: Number(width),
    height: Number(height),
    frameRate: `${Number(fps)}/1`,
    frames: frames.length,
    pixelFormat,
  };
}
