/** Free space checks before a long write: needs on one file system are added up before they are compared. */
import { stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { displayPath } from '../display-path.js';
import { SoraError } from '../errors.js';

export interface SpaceNeed {
  /** A file or folder to be written (it need not exist yet). */
  readonly path: string;
  readonly bytes: number;
  /** For the message: "the download", "the converted model". */
  readonly what: string;
}

/** The path itself or its nearest existing ancestor: what a new file there would live on. */
async function existingAncestor(path: string): Promise<string> {
  for (let current = path; ; current = dirname(current)) {
    if ((await stat(current).catch(() => undefined)) !== undefined || dirname(current) === current) return current;
  }
}

const GIB = 1024 ** 3;

function gib(bytes: number): string {
  return `${(bytes / GIB).toFixed(bytes < 10 * GIB ? 2 : 1)} GiB`;
}

/** Throws an IO error naming each file system that lacks room, before anything is written. */
export async function checkDiskSpace(needs: readonly SpaceNeed[]): Promise<void> {
  const byDevice = new Map<number, { anchor: string; free: number; needs: SpaceNeed[] }>();
  for (const need of needs) {
    if (need.bytes <= 0) continue;
    const anchor = await existingAncestor(need.path);
    const device = (await stat(anchor)).dev;
    const entry = byDevice.get(device);
    if (entry !== undefined) {
      entry.needs.push(need);
      continue;
    }
    const fs = await statfs(anchor);
    byDevice.set(device, { anchor, free: fs.bavail * fs.bsize, needs: [need] });
  }
  for (const { anchor, free, needs: here } of byDevice.values()) {
    const total = here.reduce((sum, need) => sum + need.bytes, 0);
    if (total <= free) continue;
    const parts = here.map((need) => `${need.what} ${gib(need.bytes)} in ${displayPath(need.path)}`).join(' + ');
    throw new SoraError('IO', `not enough disk space: ${parts} = ${gib(total)}, but the file system of ${displayPath(anchor)} has ${gib(free)} free`);
  }
}
