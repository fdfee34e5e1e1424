import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * The tool's one cache folder (README, "What this tool promises"): ~/Library/Caches/ondevice-sora on macOS,
 * $XDG_CACHE_HOME (or ~/.cache)/ondevice-sora elsewhere; `part` names the subfolder of one kind of entry.
 */
export function toolCacheDir(part: string): string {
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Caches', 'ondevice-sora', part);
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ondevice-sora', part);
}
