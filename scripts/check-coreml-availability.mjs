#!/usr/bin/env node
// Part of scripts/check-coreml-bridge.sh. The Linux syntax check cannot enforce Apple's availability attributes
// (clang ignores macOS availability when building for Linux), so this checks what it can from the text:
//   1. every declaration in coreml_api_subset.h carries API_AVAILABLE(macos(X), ...), as Apple's headers do;
//   2. no X is newer than the bridge's deployment target in CMakeLists.txt. The macOS build turns unguarded uses
//      of newer API into errors (-Werror=unguarded-availability-new); this catches them before anyone has a Mac.
// Usage: check-coreml-availability.mjs <coreml_api_subset.h> <CMakeLists.txt>. Exit 1 with one line per problem.
import { readFileSync } from 'node:fs';

const [headerPath, cmakePath] = process.argv.slice(2);
const target = /CMAKE_OSX_DEPLOYMENT_TARGET "(\d+(?:\.\d+)?)"/.exec(readFileSync(cmakePath, 'utf8'))?.[1];
if (target === undefined) {
  console.error(`check-coreml-availability: no CMAKE_OSX_DEPLOYMENT_TARGET "<version>" in ${cmakePath}`);
  process.exit(1);
}

const versionParts = (version) => version.split('.').map(Number);
const newer = (a, b) => {
  const [x, y] = [versionParts(a), versionParts(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  return false;
};

// Comments and preprocessor lines removed, line numbers kept.
const lines = readFileSync(headerPath, 'utf8')
  .replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, ''))
  .split('\n')
  .map((line) => (/^\s*#/.test(line) ? '' : line.replace(/\/\/.*$/, '')));

const problems = [];
const report = (index, what) => problems.push(`${headerPath}:${index + 1}: ${what}`);
const STATEMENT_START = /^\s*(@property\b|[-+]\s*\(|typedef\b|[A-Za-z_][\w\s*]*\b\w+\s*\()/;
const CONTAINER = /^\s*@(interface|protocol)\s+\w+(?!\s*;)/;
const ENUM_CASE = /^\s+[A-Za-z_]\w*\b[^=;]*=/;

let statement = null;
let previous = '';
for (const [index, line] of lines.entries()) {
  if (line.trim() === '') continue;
  if (CONTAINER.test(line) && !previous.includes('API_AVAILABLE(')) report(index, `${line.trim()}: no API_AVAILABLE on the line before`);
  if (statement === null && STATEMENT_START.test(line) && !CONTAINER.test(line)) statement = { index, text: '' };
  if (statement !== null) {
    statement.text += `${line}\n`;
    if (ENUM_CASE.test(line) && !line.includes('API_AVAILABLE(')) report(index, `${line.trim()}: enumerator without API_AVAILABLE`);
    if (line.trimEnd().endsWith(';')) {
      if (!statement.text.includes('API_AVAILABLE(')) report(statement.index, `${statement.text.trim().split('\n')[0]}: no API_AVAILABLE`);
      statement = null;
    }
  }
  previous = line;
}

for (const [index, line] of lines.entries()) {
  for (const [, version] of line.matchAll(/\bmacos\((\d+(?:\.\d+)*)\)/g)) {
    if (newer(version, target)) {
      report(index, `macOS ${version} API, newer than the deployment target ${target}: the bridge must not call it without an @available guard`);
    }
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(`check-coreml-availability: ${problem}`);
  process.exit(1);
}
console.log(`check-coreml-availability: every declaration has its availability, none newer than macOS ${target}`);
