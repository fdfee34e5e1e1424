import { toolCacheDir } from '../cache-dir.js';

/** ~/Library/Caches/ondevice-sora/coreml on macOS, $XDG_CACHE_HOME (or ~/.cache)/ondevice-sora/coreml elsewhere. */
export function defaultCoreMLCacheDir(): string {
  return toolCacheDir('coreml');
}
