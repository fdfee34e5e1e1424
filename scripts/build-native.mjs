#!/usr/bin/env node
// Builds the native addons of CMakeLists.txt with cmake-js; the package's `install` script.
// A machine without cmake or a C++ compiler must still install the tool: the JavaScript side falls back
// (src/native/memory.ts) and `doctor` reports what is missing. So any failure prints one warning line,
// keeps the full output in build/native-build.log, and exits 0.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const logPath = join(root, 'build', 'native-build.log');

function warn(reason) {
  console.warn(`ondevice-sora: native addons not built (${reason}); JavaScript fallbacks in use, see \`ondevice-sora doctor\``);
}

function cmakeJsEntry() {
  try {
    return createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
  } catch {
    return null;
  }
}

function main() {
  if (spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status !== 0) return warn('cmake not found');
  const cmakeJs = cmakeJsEntry();
  if (!cmakeJs) return warn('cmake-js not installed');
  // `compile` retries with a clean build directory when an incremental build fails (e.g. a changed compiler).
  const build = spawnSync(process.execPath, [cmakeJs, 'compile', '--directory', root], { cwd: root, encoding: 'utf8' });
  mkdirSync(dirname(logPath), { recursive: true });
  writeFileSync(logPath, `${build.stdout ?? ''}${build.stderr ?? ''}${build.error ? String(build.error) : ''}`);
  if (build.status !== 0) return warn(`build failed, see ${relative(process.cwd(), logPath)}`);
  console.log('ondevice-sora: native addons built');
}

main();
