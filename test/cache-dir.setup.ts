/**
 * vitest global setup: the tool's cache (src/cache-dir.ts) in a temporary folder for the whole run, so that the
 * tests' many temporary model copies do not leave verified-hash entries in the developer's own cache.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'sora-cache-'));
  process.env.XDG_CACHE_HOME = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
