/**
 * What `--overwrite` may replace: only what this tool wrote, like ffmpeg's `-y` for a single file but never a folder
 * of the user's. Each kind of output says how an existing one is recognised as a previous output of that kind:
 * - a video or preview: a regular file (the user named it, as with ffmpeg -y);
 * - a sidecar: a JSON file with a sidecar's fields;
 * - a frames folder: nothing in it but `frame_NNNNN.png` files, and a sidecar of this tool beside it that names
 *   the folder as its frames output (an empty folder holds nothing to lose);
 * - a model folder: its manifest.json and the files that manifest lists, nothing else (see `models make-synthetic`).
 * Anything else is refused with one line naming what is in the way. The root folder, the home folder, the current
 * folder and every folder above it are refused whatever they hold.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir, realpath } from 'node:fs/promises';
import { homedir } from 'node:os';
import { resolve, sep } from 'node:path';
import { displayPath } from '../display-path.js';
import { SoraError } from '../errors.js';
import { readOwnSidecar } from './sidecar.js';

/** Ends the message for something this tool did not write. */
export const NOT_OURS = '--overwrite replaces only what this tool wrote';

export interface OutputKind {
  /** Why what exists at `path` is not a previous output of this kind, or undefined when it is one. */
  inTheWay(path: string, stats: Stats): Promise<string | undefined>;
}

export function fileOutput(noun: string): OutputKind {
  return {
    async inTheWay(_path, stats) {
      if (stats.isDirectory()) return `is a folder; cannot replace it with ${noun}`;
      if (stats.isSymbolicLink()) return `is a symbolic link; cannot replace it with ${noun}`;
      return stats.isFile() ? undefined : `is not a regular file; cannot replace it with ${noun}`;
    },
  };
}

export const SIDECAR_OUTPUT: OutputKind = {
  async inTheWay(path, stats) {
    if (!stats.isFile()) return 'is not a regular file; cannot replace it with a sidecar';
    return (await readOwnSidecar(path)) === undefined ? `is not a sidecar this tool wrote; ${NOT_OURS}` : undefined;
  },
};

/** `frame_00000.png`, … as the frames writer names them. */
const FRAME_FILE = /^frame_\d{5,}\.png$/;

export function framesOutput(sidecarPath: string): OutputKind {
  return {
    async inTheWay(path, stats) {
      if (!stats.isDirectory()) return 'is a file; cannot replace it with a folder of frames';
      const entries = await readdir(path, { withFileTypes: true });
      const stranger = entries.find((entry) => !entry.isFile() || !FRAME_FILE.test(entry.name));
      if (stranger !== undefined) return `is a folder holding ${stranger.name}, which is not a frame this tool wrote; ${NOT_OURS}`;
      if (entries.length === 0) return undefined;
      const sidecar = await readOwnSidecar(sidecarPath);
      const ours = sidecar?.output.format === 'frames' && resolve(sidecar.output.path) === resolve(path);
      return ours ? undefined : `holds frames that no sidecar of this tool (${displayPath(sidecarPath)}) says it wrote; ${NOT_OURS}`;
    },
  };
}

/**
 * Checks an output path before any work: nothing there is fine; a protected folder is always refused; an output
 * of another kind, or a folder holding anything this tool did not write, is refused even with `overwrite`;
 * a previous output of this kind is replaced only with `overwrite`.
 */
export async function checkReplaceable(path: string, kind: OutputKind, overwrite: boolean): Promise<void> {
  const target = resolve(path);
  const stats = await lstat(target).catch(() => undefined);
  if (stats === undefined) return;
  const protectedAs = await protectedFolder(target);
  if (protectedAs !== undefined) throw new SoraError('IO', `${displayPath(target)} is ${protectedAs}: never replaced`);
  const problem = await kind.inTheWay(target, stats);
  if (problem !== undefined) throw new SoraError('IO', `${displayPath(target)} ${problem}`);
  if (!overwrite) throw new SoraError('IO', `${displayPath(target)} already exists (pass --overwrite to replace it)`);
}

async function protectedFolder(path: string): Promise<string | undefined> {
  const real = await realpath(path).catch(() => path);
  const cwd = await realpath(process.cwd()).catch(() => process.cwd());
  const home = await realpath(homedir()).catch(() => homedir());
  if (real === resolve(sep)) return 'the root folder';
  if (real === home) return 'your home folder';
  if (real === cwd) return 'the current folder';
  if (cwd.startsWith(real.endsWith(sep) ? real : `${real}${sep}`)) return 'a folder above the current one';
  return undefined;
}
