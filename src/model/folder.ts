/** File-system rules every model folder follows, whether its manifest is read from manifest.json or derived. */
import { isAbsolute, relative, sep } from 'node:path';

/** True when `path` lies strictly inside `root`; both must already be real paths (symlinks resolved). */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !isAbsolute(rel) && rel.split(sep)[0] !== '..';
}
