import { isAbsolute, relative } from 'node:path';

/** A path as messages show it: relative to the working directory when inside it (as the user typed it), else absolute. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}
