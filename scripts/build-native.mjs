#!/usr/bin/env node
// Builds the native addons of CMakeLists.txt with cmake-js; the package's `install` script. The project is
// configured once and each addon is then built as its own target, so a compile error costs only that addon and is
// reported with its own log (build/native-<target>.log). A machine without cmake or a compiler must still install
// the tool: the JavaScript side falls back (src/native/memory.ts), --backend onnx needs neither addon, and `doctor`
// reports what is missing. So every failure prints one warning line, naming the addon and what to install, and the
// script exits 0.
//
// macOS ships no cmake. The build keeps cmake there too (one build description, the one CI runs on Linux) and says
// `brew install cmake`; a second, hand-written compiler command line for macOS would be a build path no CI exercises.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The addons, in build order, and what losing each one means. */
export const ADDONS = [
  {
    target: 'sora_memory',
    label: 'memory addon',
    platforms: ['linux', 'darwin'],
    without: 'JavaScript fallbacks in use, see `ondevice-sora doctor`',
  },
  {
    target: 'sora_coreml',
    label: 'CoreML bridge',
    platforms: ['darwin'],
    without: '--backend coreml unavailable, see `ondevice-sora doctor`',
  },
];

/** What to install for cmake or a compiler on this platform. */
export function installHint(platform, tool) {
  if (platform === 'darwin') {
    return tool === 'cmake'
      ? 'install it with `brew install cmake` (https://brew.sh), then run `npm run build:native`'
      : 'install the Xcode command line tools with `xcode-select --install`, then run `npm run build:native`';
  }
  return tool === 'cmake'
    ? 'install cmake (Debian/Ubuntu: `apt-get install cmake`), then run `npm run build:native`'
    : 'install a C++17 compiler (Debian/Ubuntu: `apt-get install build-essential`), then run `npm run build:native`';
}

function cmakeJsEntry() {
  try {
    return createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
  } catch {
    return null;
  }
}

/** Runs cmake-js, keeping its whole output in a log; true when it succeeded. */
function cmakeJs(root, entry, args, logName) {
  const run = spawnSync(process.execPath, [entry, ...args, '--directory', root], { cwd: root, encoding: 'utf8' });
  const logPath = join(root, 'build', logName);
  mkdirSync(dirname(logPath), { recursive: true });
  writeFileSync(logPath, `${run.stdout ?? ''}${run.stderr ?? ''}${run.error ? String(run.error) : ''}`);
  return { ok: run.status === 0, log: relative(process.cwd(), logPath) || logPath };
}

export function buildNative(root, platform = process.platform) {
  const addons = ADDONS.filter((addon) => addon.platforms.includes(platform));
  const lost = (reason) => {
    for (const addon of addons) console.warn(`ondevice-sora: ${addon.label} not built (${reason}); ${addon.without}`);
  };
  if (addons.length === 0) return;
  if (spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status !== 0) {
    return lost(`cmake not found: ${installHint(platform, 'cmake')}`);
  }
  const entry = cmakeJsEntry();
  if (!entry) return lost('cmake-js is not installed: run `npm ci`');
  // A stale cache (another compiler, a moved checkout) fails configure; reconfigure starts from a clean folder.
  let configured = cmakeJs(root, entry, ['configure'], 'native-configure.log');
  if (!configured.ok) configured = cmakeJs(root, entry, ['reconfigure'], 'native-configure.log');
  if (!configured.ok) return lost(`cmake could not configure the project, see ${configured.log}; ${installHint(platform, 'compiler')}`);
  for (const addon of addons) {
    const built = cmakeJs(root, entry, ['build', '--target', addon.target], `native-${addon.target}.log`);
    if (built.ok) console.log(`ondevice-sora: ${addon.label} built`);
    else console.warn(`ondevice-sora: ${addon.label} not built (compile error, see ${built.log}); ${addon.without}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildNative(dirname(dirname(fileURLToPath(import.meta.url))));
}
