/**
 * Stand-ins for ffmpeg, passed with --ffmpeg: each answers `-version` as ffmpeg does (findFfmpeg probes it) and then
 * misbehaves in one way. They are Node scripts, so that a sleeping one has no child process to outlive it.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type FakeFfmpeg =
  /** Reads the frames, writes nothing, exits 0. */
  | 'silent'
  /** Reads the frames, writes bytes that are no video, exits 0. */
  | 'garbage'
  /** Writes its pid to `<dir>/ffmpeg.pid`, then sleeps for ever (until killed). */
  | 'hang'
  /**
   * Writes `<dir>/ffmpeg.pid`, waits until the test creates `<dir>/ffmpeg.go` (at most a minute, then exit 1), then
   * runs the real ffmpeg (first on PATH) with the same arguments: the run holding it is held as long as the test needs.
   */
  | 'gated'
  /**
   * Reads every frame, then runs the real ffmpeg (first on PATH) on them with the same arguments and `-frames:v 2`:
   * a whole, playable video of 2 frames, and exit 0.
   */
  | 'short';

const BODIES: Record<FakeFfmpeg, string> = {
  silent: `process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`,
  garbage: `process.stdin.resume(); process.stdin.on('end', () => { fs.writeFileSync(args.at(-1), 'not a video'); process.exit(0); });`,
  hang: `fs.writeFileSync(PID_FILE, String(process.pid)); setInterval(() => undefined, 1000);`,
  gated: `fs.writeFileSync(PID_FILE, String(process.pid));
const started = Date.now();
const wait = setInterval(() => {
  if (Date.now() - started > 60000) process.exit(1);
  if (!fs.existsSync(GO_FILE)) return;
  clearInterval(wait);
  const child = require('node:child_process').spawn('ffmpeg', args, { stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 1));
}, 20);`,
  short: `const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const output = args.slice(-2);
  const child = require('node:child_process').spawn('ffmpeg', [...args.slice(0, -2), '-frames:v', '2', ...output], { stdio: ['pipe', 'inherit', 'inherit'] });
  child.stdin.on('error', () => undefined); // it stops reading after 2 frames
  child.stdin.end(Buffer.concat(chunks));
  child.on('exit', (code) => process.exit(code ?? 1));
});`,
};

/** Writes the fake into `dir` and returns its path; its pid file is `join(dir, 'ffmpeg.pid')`. */
export async function writeFakeFfmpeg(dir: string, kind: FakeFfmpeg): Promise<string> {
  const path = join(dir, `ffmpeg-${kind}`);
  const script = `#!${process.execPath}
const fs = require('node:fs');
const args = process.argv.slice(2);
const PID_FILE = ${JSON.stringify(join(dir, 'ffmpeg.pid'))};
const GO_FILE = ${JSON.stringify(join(dir, 'ffmpeg.go'))};
if (args.includes('-version')) { console.log('ffmpeg version 9.9-fake'); process.exit(0); }
${BODIES[kind]}
`;
  await writeFile(path, script);
  await chmod(path, 0o755);
  return path;
}
