/** `doctor`: what this machine offers the tool, and whether `generate` can run here (and if not, what to install). */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import * as z from 'zod';
import { displayPath } from '../../display-path.js';
import { errorMessage, SoraError } from '../../errors.js';
import { blockSource, loadModel, type Model } from '../../model/manifest.js';
import { coremlBridgeStatus } from '../../native/coreml.js';
import { availableMemory, nativeStatus } from '../../native/memory.js';
import { cacheUsage, defaultCoreMLCacheDir } from '../../runtime/coreml-cache.js';
import { defaultGraphCacheDir, graphCacheUsage } from '../../runtime/onnx-graph-cache.js';
import { GRAPH_CACHE_AUTO_BYTES } from '../../pipeline/graph-cache-default.js';
import { macosSatisfies, macosVersion, modelRequirement, type ModelRequirement } from '../../runtime/coreml-package.js';
import { EXECUTION_PROVIDERS } from '../../runtime/create-backend.js';
import { disableOrtTelemetry } from '../../runtime/ort-telemetry.js';
import { findFfmpeg, type Ffmpeg } from '../../video/ffmpeg.js';
import { cliContext, type CliContext } from '../context.js';
import { parseFlags } from '../flags.js';
import { formatBytes, formatTable } from '../format.js';
import { defaultModelDir } from '../../model/default-model.js';

const run = promisify(execFile);

/** From package.json "engines". */
const MIN_NODE = [20, 17] as const;
/** Below this, even the tiny model's generation (~0.4 GB peak) is at risk. */
const LOW_MEMORY = 2 ** 30;

export type CheckLevel = 'ok' | 'warn' | 'fail';

export interface Check {
  readonly name: string;
  /** False when `generate` cannot run without it (level fail). */
  readonly ok: boolean;
  /** warn: works, but something is missing or slow. */
  readonly level: CheckLevel;
  readonly detail: string;
  /** What to install or run, for warn and fail. */
  readonly fix?: string;
}

const check = (name: string, level: CheckLevel, detail: string, fix?: string): Check => ({
  name,
  ok: level !== 'fail',
  level,
  detail,
  ...(fix !== undefined && level !== 'ok' && { fix }),
});

function checkNode(): Check {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const ok = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
  return check('node', ok ? 'ok' : 'fail', `${process.version} (needs >= ${MIN_NODE.join('.')})`, `install Node.js ${MIN_NODE.join('.')} or newer`);
}

type Ort = typeof import('onnxruntime-node');

async function checkOnnxRuntime(): Promise<{ check: Check; ort: Ort | undefined }> {
  try {
    disableOrtTelemetry();
    const ort = await import('onnxruntime-node');
    const backends = ort.listSupportedBackends();
    const names = (bundled: boolean): string =>
      backends
        .filter((b) => b.bundled === bundled)
        .map((b) => b.name)
        .join(', ') || 'none';
    const detail = `onnxruntime-node ${ort.env.versions.node ?? '?'}; bundled: ${names(true)}; not bundled: ${names(false)}`;
    return { check: check('onnxruntime', 'ok', detail), ort };
  } catch (error) {
    const detail = `cannot load onnxruntime-node: ${errorMessage(error)}`;
    return { check: check('onnxruntime', 'fail', detail, 'reinstall the dependencies: npm ci'), ort: undefined };
  }
}

/**
 * Each execution provider the backend can be asked for, tried for real on the shipped model's smallest block:
 * a provider listed by ONNX Runtime may still lack its libraries (CUDA from the npm package alone does).
 */
async function checkExecutionProviders(ort: Ort | undefined, model: Model | undefined): Promise<Check> {
  if (ort === undefined) return check('providers', 'fail', 'not probed: onnxruntime-node does not load', 'reinstall the dependencies: npm ci');
  if (model === undefined) return check('providers', 'warn', 'not probed: the shipped model does not load', 'reinstall the package');
  const smallest = [...model.blocks].sort((a, b) => a.weightBytes - b.weightBytes)[0]!;
  const inBuild = new Set(ort.listSupportedBackends().map((backend) => backend.name));
  // A provider whose libraries are missing logs its own error on stderr; the result line says it already.
  ort.env.logLevel = 'fatal';
  const results: string[] = [];
  let cpu = false;
  for (const provider of EXECUTION_PROVIDERS) {
    if (!inBuild.has(provider)) {
      results.push(`${provider} not in this build of onnxruntime-node`);
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(blockSource(smallest).path, {
        executionProviders: [provider],
        logSeverityLevel: 4,
      });
      await session.release();
      results.push(`${provider} usable`);
      if (provider === 'cpu') cpu = true;
    } catch (error) {
      results.push(`${provider} not usable (${errorMessage(error).split('\n')[0]!.slice(0, 120)})`);
    }
  }
  return check('providers', cpu ? 'ok' : 'fail', results.join('; '), 'reinstall the dependencies: npm ci');
}

async function checkModel(): Promise<{ check: Check; model: Model | undefined }> {
  try {
    const model = await loadModel(defaultModelDir());
    const detail = `${displayPath(model.dir)}: ${model.name}, ${model.blocks.length} blocks (generate's default)`;
    return { check: check('model', 'ok', detail), model };
  } catch (error) {
    const fix = 'reinstall the package (models/shapes ships with it), or pass --model <dir> to generate';
    return { check: check('model', 'fail', errorMessage(error), fix), model: undefined };
  }
}

function checkNativeAddon(): Check {
  const status = nativeStatus();
  const missing = Object.entries(status.functions)
    .filter(([, fn]) => fn.implementation !== 'native')
    .map(([name, fn]) => `${name}${fn.available ? ' (fallback)' : ' (none)'}`);
  if (status.addon.loaded && missing.length === 0) {
    return check('native', 'ok', `${displayPath(status.addon.path)}: malloc_trim, peak RSS reset, page-cache control`);
  }
  const why = status.addon.loaded ? '' : `not loaded (${status.addon.error ?? 'unknown reason'}); `;
  return check(
    'native',
    'warn',
    `${why}without it: ${missing.join(', ')}; CI-DL measures and frees memory less precisely`,
    'npm run build:native (needs cmake and a C++17 compiler)',
  );
}

function checkCoreml(): Check {
  const status = coremlBridgeStatus();
  const on = macosVersion() === null ? '' : ` on macOS ${macosVersion()}`;
  if (status.available) return check('coreml', 'ok', `bridge ${displayPath(status.path)}: --backend coreml usable${on}`);
  // Off macOS the bridge cannot exist; that is a fact about the platform, not something to fix.
  const level = process.platform === 'darwin' ? 'warn' : 'ok';
  const fix = 'xcode-select --install; brew install cmake; npm run build:native (the bridge runs on macOS 13+)';
  return check('coreml', level, `not usable${on}: ${status.reason ?? 'unknown reason'}`, fix);
}

/**
 * For a folder of CoreML packages: the macOS its packages need (their specification version) and whether this Mac
 * has it, so a Mac too old for a model hears it here rather than from a spec-version error in the middle of a run.
 */
async function checkCoremlModel(dir: string): Promise<Check> {
  let model: Model;
  let requirement: ModelRequirement;
  try {
    model = await loadModel(dir);
    requirement = await modelRequirement(model.blocks.filter((block) => block.format === 'coreml').map(blockSource));
  } catch (error) {
    return check('coreml-model', 'fail', errorMessage(error), 'pass a model folder that loads (see `ondevice-sora models verify`)');
  }
  const folder = displayPath(model.dir);
  if (requirement.blocks.length === 0) return check('coreml-model', 'ok', `${folder}: no CoreML packages (runs with --backend onnx)`);
  const newest = requirement.newest;
  const spec = newest?.specificationVersion == null ? '' : `, CoreML specification ${newest.specificationVersion}`;
  const needs =
    newest?.macos == null
      ? `${requirement.blocks.length} CoreML packages, none stating the macOS it needs`
      : `${requirement.blocks.length} CoreML packages need macOS ${newest.macos} (${newest.name}${spec})`;
  const macos = macosVersion();
  if (macos === null) return check('coreml-model', 'warn', `${folder}: ${needs}; this machine is not a Mac`, 'run it on a Mac');
  const ok = newest?.macos == null || macosSatisfies(macos, newest.macos);
  return check(
    'coreml-model',
    ok ? 'ok' : 'fail',
    `${folder}: ${needs}; this Mac runs macOS ${macos}`,
    `update macOS to ${newest?.macos ?? 'a newer version'} to run this folder with --backend coreml`,
  );
}

/** The CoreML compile cache's disk use: compiled copies as large as their packages, kept until pruned. */
async function checkCoremlCache(): Promise<Check | undefined> {
  const dir = defaultCoreMLCacheDir();
  if (process.platform !== 'darwin' && !existsSync(dir)) return undefined;
  const usage = await cacheUsage(dir);
  const models = `${usage.compiledModels} compiled model${usage.compiledModels === 1 ? '' : 's'}`;
  return check(
    'coreml-cache',
    'ok',
    `${displayPath(dir)}: ${models}, ${formatBytes(usage.bytes)} (\`ondevice-sora models cache prune\` removes stale and unused ones)`,
  );
}

/**
 * The optimised-graph cache's disk use: each entry a copy of its block's weights, kept until pruned. Reported also
 * while empty: the cache is on by default (for models within GRAPH_CACHE_AUTO_BYTES), so it fills without a flag.
 */
async function checkGraphCache(): Promise<Check> {
  const dir = defaultGraphCacheDir();
  if (!existsSync(dir)) {
    return check('onnx-graph-cache', 'ok', `${displayPath(dir)}: empty (used by default for models of up to ${formatBytes(GRAPH_CACHE_AUTO_BYTES)})`);
  }
  const usage = await graphCacheUsage(dir);
  const graphs = `${usage.entries} optimised graph${usage.entries === 1 ? '' : 's'}`;
  return check(
    'onnx-graph-cache',
    'ok',
    `${displayPath(dir)}: ${graphs}, ${formatBytes(usage.bytes)} (\`ondevice-sora models cache prune\` removes unused ones)`,
  );
}

/** The ffmpeg that generate would use (same search: FFMPEG_PATH, PATH, the bundled one), and its encoders. */
async function checkFfmpeg(): Promise<Check> {
  const install = 'install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg), or set FFMPEG_PATH';
  let ffmpeg: Ffmpeg;
  try {
    ffmpeg = await findFfmpeg(undefined);
  } catch (error) {
    return check('ffmpeg', 'fail', errorMessage(error), install);
  }
  const encoders = await ffmpegEncoders(ffmpeg.path);
  const wanted = ['libx264', 'libvpx-vp9'];
  const missing = wanted.filter((name) => !encoders.has(name));
  const detail =
    `${ffmpeg.version} (${ffmpeg.path}, from ${ffmpeg.source}); ` +
    (missing.length === 0 ? `encoders ${wanted.join(', ')}` : `missing encoders: ${missing.join(', ')} (mp4 needs libx264, webm libvpx-vp9)`);
  return check('ffmpeg', missing.length === 0 ? 'ok' : 'warn', detail, `${install} built with ${missing.join(' and ')}`);
}

async function ffmpegEncoders(path: string): Promise<Set<string>> {
  try {
    const { stdout } = await run(path, ['-hide_banner', '-encoders'], { timeout: 15_000, maxBuffer: 8 << 20 });
    return new Set(stdout.split('\n').map((line) => line.trim().split(/\s+/)[1] ?? ''));
  } catch {
    return new Set();
  }
}

function checkMemory(): Check {
  const memory = availableMemory();
  const limit = memory.cgroupLimit === null ? 'no cgroup limit' : `cgroup limit ${formatBytes(memory.cgroupLimit)}`;
  const detail = `${formatBytes(memory.total)} total, ${formatBytes(memory.available)} available, ${limit}`;
  const low = memory.available < LOW_MEMORY;
  return check('memory', low ? 'warn' : 'ok', detail, 'free memory, or cap generate with --memory-budget (CI-DL)');
}

/** The SIMD features ONNX Runtime's CPU kernels use, as the kernel reports them. */
const X86_FEATURES = ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'avx_vnni', 'amx_tile'];
const ARM_FEATURES: Readonly<Record<string, string>> = {
  asimd: 'neon',
  asimdhp: 'fp16',
  asimddp: 'dotprod',
  i8mm: 'i8mm',
  bf16: 'bf16',
  sve: 'sve',
  sve2: 'sve2',
};

async function cpuFeatures(): Promise<string[] | null> {
  if (process.platform === 'darwin' && process.arch === 'arm64') return ['neon', 'fp16', 'dotprod']; // every Apple Silicon
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => null);
  if (cpuinfo === null) return null;
  const flags = new Set(/^(?:flags|Features)\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? []);
  return process.arch === 'arm64'
    ? Object.entries(ARM_FEATURES).flatMap(([flag, name]) => (flags.has(flag) ? [name] : []))
    : X86_FEATURES.filter((flag) => flags.has(flag));
}

async function checkCpu(): Promise<Check> {
  const features = await cpuFeatures();
  const model = cpus()[0]?.model.trim() || 'unknown model';
  const listed = features === null ? 'features unknown (no /proc/cpuinfo)' : `features: ${features.join(' ') || 'none of note'}`;
  const detail = `${availableParallelism()} threads, ${model}, ${process.arch}; ${listed}`;
  const slow = process.arch === 'x64' && features !== null && !features.includes('avx2');
  return check('cpu', slow ? 'warn' : 'ok', detail, 'ONNX Runtime is several times slower without AVX2: use a newer CPU if you can');
}

const DoctorFlags = z.object({ model: z.string().min(1, 'must name a folder').optional() });

/** What `doctor` runs (commands/ defines its options). */
export async function doctorAction(options: Record<string, unknown>, self: Command): Promise<void> {
  await doctor(options, cliContext(self));
}

async function doctor(options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(DoctorFlags, options);
  const { check: onnx, ort } = await checkOnnxRuntime();
  const { check: model, model: tiny } = await checkModel();
  const coremlCache = await checkCoremlCache();
  const graphCache = await checkGraphCache();
  const checks = [
    checkNode(),
    onnx,
    await checkExecutionProviders(ort, tiny),
    checkNativeAddon(),
    checkCoreml(),
    ...(flags.model === undefined ? [] : [await checkCoremlModel(flags.model)]),
    ...(coremlCache === undefined ? [] : [coremlCache]),
    graphCache,
    await checkFfmpeg(),
    model,
    checkMemory(),
    await checkCpu(),
  ];
  const failed = checks.filter((c) => !c.ok);
  const label = (c: Check): string =>
    c.level === 'ok' ? context.paint('ok', 'green') : c.level === 'warn' ? context.paint('warn', 'yellow') : context.paint('FAIL', 'red');
  // Aligned on the plain words; the colour goes in afterwards, as escape codes would count as width.
  const table = formatTable(checks.map((c) => [c.name, c.level === 'fail' ? 'FAIL' : c.level, c.detail]))
    .split('\n')
    .map((row, i) => row.replace(checks[i]!.level === 'fail' ? 'FAIL' : checks[i]!.level, label(checks[i]!)))
    .join('\n');
  const fixes = checks.filter((c) => c.fix !== undefined).map((c) => `  ${c.name}: ${c.fix}`);
  const text = fixes.length === 0 ? table : `${table}\n\nto fix:\n${fixes.join('\n')}`;
  context.result(text, { ok: failed.length === 0, checks });
  if (failed.length > 0) {
    const what = failed.map((c) => c.name).join(', ');
    throw new SoraError('DEPENDENCY', `generate cannot run here: ${what} not usable; ${failed.map((c) => c.fix).join('; ')}`);
  }
}
