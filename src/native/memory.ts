/**
 * Memory figures and page-cache control for the CI-DL scheduler and `doctor`.
 *
 * Backed by the native addon `build/Release/sora_memory.node` (native/memory, built at install by
 * scripts/build-native.mjs). Without it, pure-JS fallbacks read /proc on Linux and `process`/`os` elsewhere;
 * malloc trimming and page-cache control have no fallback and report `available: false` in nativeStatus().
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { errorMessage, SoraError } from '../errors.js';
import { packagePath } from '../package-root.js';

export interface ProcessMemory {
  /** Resident bytes of every kind. */
  readonly rss: number;
  /** Resident heap/stack bytes (what unloading plus mallocTrim can give back); null when unknown. */
  readonly anonymous: number | null;
  /** Resident bytes of mapped files, e.g. mmapped weights the kernel may drop; null when unknown. */
  readonly fileBacked: number | null;
  /** Bytes the OS charges to the process: macOS phys_footprint, Linux anonymous + shared memory. */
  readonly footprint: number;
}

export interface AvailableMemory {
  /** What this process may still allocate: the smaller of the system figure and the cgroup headroom. */
  readonly available: number;
  /** Physical memory of the machine. */
  readonly total: number;
  /** Linux MemAvailable; macOS free + inactive + purgeable pages. */
  readonly systemAvailable: number;
  /** The tightest cgroup memory limit above this process, null when none. */
  readonly cgroupLimit: number | null;
  /** That cgroup's charged usage (page cache included), null when no limit. */
  readonly cgroupUsage: number | null;
}

export interface ByteRange {
  readonly offset?: number;
  /** Bytes from offset; omitted or 0 means to the end of the file. */
  readonly length?: number;
}

/** The JS API of sora_memory.node (native/memory/addon.cc). */
export interface MemoryAddon {
  readonly apiVersion: number;
  readonly capabilities: {
    readonly mallocTrim: boolean;
    readonly resetPeakRss: boolean;
    readonly mmapThreshold: boolean;
    readonly pageCache: boolean;
  };
  processMemory(): { rss: number; anonymous: number; fileBacked: number; footprint: number };
  peakRss(): number;
  resetPeakRss(): boolean;
  availableMemory(): AvailableMemory;
  mallocTrim(): boolean;
  setMmapThreshold(bytes: number): boolean;
  prefetchFile(path: string, offset: number, length: number): Promise<number>;
  evictFile(path: string): Promise<void>;
  residentBytes(path: string): Promise<number>;
}

export type FunctionName =
  | 'processMemory'
  | 'peakRss'
  | 'resetPeakRss'
  | 'availableMemory'
  | 'mallocTrim'
  | 'mmapThreshold'
  | 'pageCache';

export interface FunctionStatus {
  readonly available: boolean;
  readonly implementation: 'native' | 'fallback' | 'none';
  /** Why a fallback is partial or a function is missing; null when nothing to say. */
  readonly note: string | null;
}

export interface NativeStatus {
  readonly addon: { readonly loaded: boolean; readonly path: string; readonly error: string | null };
  readonly functions: Readonly<Record<FunctionName, FunctionStatus>>;
}

export interface MemoryApi {
  processMemory(): ProcessMemory;
  /** Highest RSS since start or since the last successful resetPeakRss(). */
  peakRss(): number;
  /** Resets the peak RSS counter to the current RSS; false where the OS cannot. */
  resetPeakRss(): boolean;
  availableMemory(): AvailableMemory;
  /** Returns freed heap pages to the OS; true when some were returned, false also when unsupported. */
  mallocTrim(): boolean;
  /**
   * Makes every later allocation of at least `bytes` a mapping of its own, given back to the OS by free() (glibc
   * mallopt; fixing the threshold also stops glibc from raising it). False where unsupported.
   */
  setMmapThreshold(bytes: number): boolean;
  /** Reads the range into the page cache on a background thread; resolves with the bytes read (0 without the addon). */
  prefetchFile(path: string, range?: ByteRange): Promise<number>;
  /** Drops the file's cached pages on a background thread; false without the addon. */
  evictFile(path: string): Promise<boolean>;
  /** Bytes of the file in the page cache; null without the addon. */
  residentBytes(path: string): Promise<number | null>;
  nativeStatus(): NativeStatus;
}

const API_VERSION = 2;
const ADDON_PATH = packagePath('build', 'Release', 'sora_memory.node');
const REBUILD_HINT = 'run `npm run build:native` (needs cmake and a C++17 compiler)';
const IS_LINUX = process.platform === 'linux';

// ------------------------------------------------------------------------------------------------
// Pure-JS fallbacks. On Linux they read the same files as the addon, so only the functions that need
// system calls (malloc_trim, fadvise, mincore) are lost; elsewhere `process` and `os` give approximations.

/** "Name:   1234 kB" lines of /proc/self/status or /proc/meminfo, in bytes. */
function readKilobyteFields(path: string): Map<string, number> {
  const fields = new Map<string, number>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([^:]+):\s+(\d+)( kB)?$/.exec(line);
    if (match?.[1] && match[2]) fields.set(match[1], Number(match[2]) * (match[3] ? 1024 : 1));
  }
  return fields;
}

function readNumberFile(path: string): number | null {
  try {
    const value = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isNaN(value) ? null : value;
  } catch {
    return null;
  }
}

function readStatField(path: string, name: string): number {
  try {
    const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(readFileSync(path, 'utf8'));
    return match?.[1] ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

interface CgroupLayout {
  readonly root: string;
  readonly path: string;
  readonly limit: string;
  readonly usage: string;
  readonly reclaimableKey: string;
}

/** Finds the hierarchy holding the memory controller from /proc/self/cgroup ("id:controllers:path"). */
function locateMemoryCgroup(): CgroupLayout | null {
  let unified: CgroupLayout | null = null;
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [id, controllers, ...rest] = line.split(':');
    const path = rest.join(':');
    if (controllers?.split(',').includes('memory')) {
      return {
        root: '/sys/fs/cgroup/memory',
        path,
        limit: 'memory.limit_in_bytes',
        usage: 'memory.usage_in_bytes',
        reclaimableKey: 'total_inactive_file',
      };
    }
    if (id === '0' && controllers === '') {
      const root = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
      unified = { root, path, limit: 'memory.max', usage: 'memory.current', reclaimableKey: 'inactive_file' };
    }
  }
  return unified;
}

/** Both cgroup versions write "no limit" as a huge number (v1) or "max" (v2, parsed as null). */
const CGROUP_UNLIMITED = 2 ** 62;

/** The cgroup level with the least headroom, walking up because a parent's limit binds its children. */
function tightestCgroup(): { limit: number; usage: number; headroom: number } | null {
  const layout = locateMemoryCgroup();
  if (!layout) return null;
  let relative = layout.path === '/' ? '' : layout.path;
  // Inside a cgroup namespace the listed path may not exist under the mount; the mount is our cgroup then.
  if (!existsSync(`${layout.root}${relative}/cgroup.procs`)) relative = '';
  let tightest: { limit: number; usage: number; headroom: number } | null = null;
  for (;;) {
    const dir = `${layout.root}${relative}`;
    const limit = readNumberFile(`${dir}/${layout.limit}`);
    const usage = readNumberFile(`${dir}/${layout.usage}`);
    if (limit !== null && usage !== null && limit < CGROUP_UNLIMITED) {
      // Inactive file pages are charged to the cgroup but reclaimed before it hits its limit.
      const workingSet = Math.max(0, usage - readStatField(`${dir}/memory.stat`, layout.reclaimableKey));
      const headroom = Math.max(0, limit - workingSet);
      if (!tightest || headroom < tightest.headroom) tightest = { limit, usage, headroom };
    }
    if (relative === '') return tightest;
    relative = relative.slice(0, relative.lastIndexOf('/'));
  }
}

function fallbackProcessMemory(): ProcessMemory {
  if (!IS_LINUX) {
    const rss = process.memoryUsage.rss();
    return { rss, anonymous: null, fileBacked: null, footprint: rss };
  }
  const status = readKilobyteFields('/proc/self/status');
  const anonymous = status.get('RssAnon') ?? 0;
  return {
    rss: status.get('VmRSS') ?? 0,
    anonymous,
    fileBacked: status.get('RssFile') ?? 0,
    footprint: anonymous + (status.get('RssShmem') ?? 0),
  };
}

function fallbackPeakRss(): number {
  const peak = IS_LINUX ? readKilobyteFields('/proc/self/status').get('VmHWM') : undefined;
  return peak ?? process.resourceUsage().maxRSS * 1024;
}

function fallbackResetPeakRss(): boolean {
  if (!IS_LINUX) return false;
  try {
    writeFileSync('/proc/self/clear_refs', '5'); // 5 resets VmHWM (Linux >= 4.0)
    return true;
  } catch {
    return false;
  }
}

function fallbackAvailableMemory(): AvailableMemory {
  if (!IS_LINUX) {
    const free = os.freemem();
    return { available: free, total: os.totalmem(), systemAvailable: free, cgroupLimit: null, cgroupUsage: null };
  }
  const meminfo = readKilobyteFields('/proc/meminfo');
  const systemAvailable = meminfo.get('MemAvailable') ?? os.freemem();
  const cgroup = tightestCgroup();
  return {
    available: cgroup ? Math.min(systemAvailable, cgroup.headroom) : systemAvailable,
    total: meminfo.get('MemTotal') ?? os.totalmem(),
    systemAvailable,
    cgroupLimit: cgroup?.limit ?? null,
    cgroupUsage: cgroup?.usage ?? null,
  };
}

// ------------------------------------------------------------------------------------------------

async function asIoError<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    throw new SoraError('IO', errorMessage(error), { cause: error });
  }
}

function checkedRange(range: ByteRange | undefined): [number, number] {
  const offset = range?.offset ?? 0;
  const length = range?.length ?? 0;
  for (const [name, value] of [['offset', offset], ['length', length]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new SoraError('INTERNAL', `prefetch ${name} must be a non-negative integer, got ${value}`);
    }
  }
  return [offset, length];
}

const NATIVE: FunctionStatus = { available: true, implementation: 'native', note: null };

function nativeIf(available: boolean, whyNot: string): FunctionStatus {
  return available ? NATIVE : missing(whyNot);
}

function fallback(note: string | null = null): FunctionStatus {
  return { available: true, implementation: 'fallback', note };
}

function missing(note: string): FunctionStatus {
  return { available: false, implementation: 'none', note };
}

function describeFunctions(addon: MemoryAddon | null, loadError: string | null): Record<FunctionName, FunctionStatus> {
  if (addon) {
    const { capabilities } = addon;
    return {
      processMemory: NATIVE,
      peakRss: NATIVE,
      resetPeakRss: nativeIf(capabilities.resetPeakRss, 'this OS cannot reset the peak RSS counter'),
      availableMemory: NATIVE,
      mallocTrim: nativeIf(capabilities.mallocTrim, 'the C library has no malloc_trim'),
      mmapThreshold: nativeIf(capabilities.mmapThreshold, 'the C library has no M_MMAP_THRESHOLD (not needed by macOS malloc)'),
      pageCache: nativeIf(capabilities.pageCache, 'no page-cache control on this OS'),
    };
  }
  const notLoaded = `native addon not loaded (${loadError ?? 'unknown reason'}); ${REBUILD_HINT}`;
  return {
    processMemory: fallback(IS_LINUX ? null : 'no anonymous/file-backed split; footprint is RSS'),
    peakRss: fallback(),
    resetPeakRss: IS_LINUX ? fallback() : missing(notLoaded),
    availableMemory: fallback(IS_LINUX ? null : 'os.freemem() ignores reclaimable cache and underestimates'),
    mallocTrim: missing(notLoaded),
    mmapThreshold: missing(notLoaded),
    pageCache: missing(notLoaded),
  };
}

/** Builds the API over an addon, or over the fallbacks when `addon` is null (also how tests exercise them). */
export function createMemoryApi(addon: MemoryAddon | null, loadError: string | null = null): MemoryApi {
  const nativeStatus: NativeStatus = {
    addon: { loaded: addon !== null, path: ADDON_PATH, error: addon ? null : loadError },
    functions: describeFunctions(addon, loadError),
  };
  if (!addon) {
    return {
      processMemory: fallbackProcessMemory,
      peakRss: fallbackPeakRss,
      resetPeakRss: fallbackResetPeakRss,
      availableMemory: fallbackAvailableMemory,
      mallocTrim: () => false,
      setMmapThreshold: () => false,
      prefetchFile: async (_path, range) => {
        checkedRange(range);
        return 0;
      },
      evictFile: async () => false,
      residentBytes: async () => null,
      nativeStatus: () => nativeStatus,
    };
  }
  return {
    processMemory: () => addon.processMemory(),
    peakRss: () => addon.peakRss(),
    resetPeakRss: () => addon.resetPeakRss(),
    availableMemory: () => addon.availableMemory(),
    mallocTrim: () => addon.mallocTrim(),
    setMmapThreshold: (bytes) => addon.setMmapThreshold(bytes),
    prefetchFile: async (path, range) => asIoError(addon.prefetchFile(path, ...checkedRange(range))),
    evictFile: async (path) => {
      await asIoError(addon.evictFile(path));
      return true;
    },
    residentBytes: async (path) => asIoError(addon.residentBytes(path)),
    nativeStatus: () => nativeStatus,
  };
}

/** Loads the addon built at install; a missing, unloadable or stale build yields the reason instead. */
export function loadMemoryAddon(path: string = ADDON_PATH): { addon: MemoryAddon | null; error: string | null } {
  if (!existsSync(path)) return { addon: null, error: 'not built' };
  try {
    const addon = createRequire(import.meta.url)(path) as MemoryAddon;
    if (addon.apiVersion !== API_VERSION) {
      return { addon: null, error: `stale build (API ${String(addon.apiVersion)}, expected ${API_VERSION})` };
    }
    return { addon, error: null };
  } catch (error) {
    const message = errorMessage(error);
    return { addon: null, error: message.split('\n')[0] ?? message };
  }
}

const loaded = loadMemoryAddon();
const memory = createMemoryApi(loaded.addon, loaded.error);

export const processMemory = memory.processMemory;
export const peakRss = memory.peakRss;
export const resetPeakRss = memory.resetPeakRss;
export const availableMemory = memory.availableMemory;
export const mallocTrim = memory.mallocTrim;
export const setMmapThreshold = memory.setMmapThreshold;
export const prefetchFile = memory.prefetchFile;
export const evictFile = memory.evictFile;
export const residentBytes = memory.residentBytes;
export const nativeStatus = memory.nativeStatus;
