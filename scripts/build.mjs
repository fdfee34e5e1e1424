/**
 * `npm run build` (after `tsc --noEmit`, which type-checks): dist/ as esbuild bundles, for start-up time (issue 17).
 * Node's ESM loader costs ~2 ms a module, and `generate` loaded ~220 of them (125 of ours, ~95 of zod's) before its
 * first block; bundled, it loads a handful of chunks. Code splitting keeps what each command imports when it runs
 * (`await import(...)`) in chunks of its own, loaded only then.
 *
 * The entries are the files that something outside the bundle loads by path: the bin's two (ort-telemetry.js first,
 * so that ONNX Runtime's telemetry is off before anything can load the library, then main.js) and the ONNX worker
 * thread's (src/runtime/onnx-worker-start.ts). Paths the code needs at run time go through src/package-root.ts,
 * since a module's code lands in a chunk at another depth than its source.
 *
 * zod is imported as a namespace (`import * as z from 'zod'`, test/bundle-imports.test.ts): esbuild then keeps the
 * members the code uses. Through zod's own `z` object it kept all of zod, every locale included: 582 KB for `generate`
 * to parse before its first block, 152 KB now.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const ENTRIES = ['src/cli/main.ts', 'src/runtime/ort-telemetry.ts', 'src/runtime/onnx-worker.ts'];

/** Loaded from node_modules at run time rather than bundled, each for a reason of its own. */
const EXTERNAL = [
  // Native addons.
  'onnxruntime-node',
  'sharp',
  // Read files of their own by path: BullMQ its scripts, pino its transport workers, the ffmpeg installer the
  // package of this platform's binary.
  'bullmq',
  'pino',
  'pino-pretty',
  '@ffmpeg-installer/ffmpeg',
  // BullMQ loads it from node_modules as well: bundled too, a queue command would load it twice.
  'ioredis',
];

/** Bundled CommonJS code (commander) calls `require` for Node's modules, which an ES module does not have. */
const REQUIRE_BANNER = "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);";

// Emptied first: a module left from an earlier build would be found by nothing, or hide a path that broke.
await rm(join(ROOT, 'dist'), { recursive: true, force: true });
await build({
  absWorkingDir: ROOT,
  entryPoints: ENTRIES,
  outbase: 'src',
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  banner: { js: REQUIRE_BANNER },
  // Less for V8 to parse at every start (zod's chunk: 740 KB, 570 KB). Names are kept for stack traces, whose
  // positions the source maps lead back to src/ (the bin turns them on with --verbose).
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: true,
  // The maps point at src/, which the package ships; without copies of it they stay small enough to load quickly.
  sourcesContent: false,
  logLevel: 'warning',
});
