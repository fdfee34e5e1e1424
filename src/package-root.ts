/**
 * The package's root folder, for what it ships beside the code (models/, scripts/, ios/, build/Release/, the worker
 * bundle). Found by walking up to package.json rather than by a fixed '../..' from each module: the code runs from
 * src/ (tsx, vitest) and from dist/, where esbuild puts a module in whichever chunk uses it, at another depth.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function rootAbove(folder: string): string {
  if (existsSync(join(folder, 'package.json'))) return folder;
  const parent = dirname(folder);
  if (parent === folder) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
  return rootAbove(parent);
}

export const PACKAGE_ROOT = rootAbove(dirname(fileURLToPath(import.meta.url)));

/** A path inside the package, from its root. */
export function packagePath(...segments: readonly string[]): string {
  return join(PACKAGE_ROOT, ...segments);
}
