/**
 * `npm run check:mac`: the self-check for the first Mac that runs this project. The CoreML bridge was written and
 * checked without Apple hardware (against Apple's headers, a fake of the bridge and the authors' app); this proves or
 * disproves, on a real Mac, every assumption it makes, and prints what a bug report needs:
 *   1. the machine (macOS, chip, Node, Xcode command line tools, cmake, Python);
 *   2. both native addons built, each on its own; then the darwin-only tests (test/coreml-bridge.darwin.test.ts and
 *      the macOS cases of the others);
 *   3. the probe package (y = 2x + 1 over x of shape [1, 16, 2..8, 1..4]) on every compute-unit setting: its raw
 *      NSRanges, spec version, compile/load/predict times, output backings;
 *   4. the tiny model's golden blocks converted with coremltools, each against its PyTorch outputs on every setting;
 *   5. `generate --backend coreml` on every setting against `--backend onnx` on the same model and seed (frames);
 *   6. with --iphone (an iPhone attached and trusted, --team or $ONDEVICE_SORA_TEAM to sign): `devices`, then
 *      `device setup` (cmake -G Xcode, xcodebuild, devicectl install / copy the CoreML model / launch), the app's
 *      hello and memory (os_proc_available_memory) through usbmuxd, `generate --device` against the Mac's
 *      `--backend coreml` (frames), and `bench --device` (the phone's per-step time and bytes against local ONNX);
 * and ends with one line per assumption: holds / does not hold / not checked (why).
 *
 * Python for steps 4–5: --python <interpreter with coremltools 8.3, torch and onnx>; otherwise a venv it makes in
 * build/check-mac/venv (python3 -m venv --system-site-packages; pip install coremltools==8.3 torch==2.5.0 onnx);
 * --no-python skips them. The CoreML model of step 5: --coreml-model <dir>, else models/tiny-coreml when the repository
 * ships it, else models/tiny converted by `make_tiny_model.py --format coreml` when that exists; the ONNX one:
 * --onnx-model <dir> (default models/tiny).
 *
 * Exit status: 0 every checked assumption holds, 1 one does not, 8 not a Mac (nothing run).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';

import { blockSource, loadModel } from '../src/model/manifest.js';
import { COMPUTE_UNITS, loadCoreMLBridge, type CoreMLBridge, type FeatureDescription } from '../src/native/coreml.js';
import { hostOutputs, type Tensor } from '../src/runtime/backend.js';
import { CoreMLBackend } from '../src/runtime/coreml-backend.js';
import { packageRequirement } from '../src/runtime/coreml-package.js';
import { rangeReading, sizeBounds } from '../src/runtime/coreml-tensors.js';
import { writeMlpackage } from '../test/helpers/coreml-package.js';
import { maxRelativeError, readGolden } from '../test/helpers/golden.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORK = join(ROOT, 'build', 'check-mac');
const NOT_MAC_EXIT = 8;

/** Relative error each golden block may have against PyTorch (why: see README, "The Mac self-check"). */
export const BLOCK_TOLERANCE = 1e-3;
/** Frames against the ONNX backend's, in dB: float32 blocks, and models with float16 blocks. */
export const PSNR_FLOAT32 = 40;
export const PSNR_FLOAT16 = 30;

export type Verdict = 'holds' | 'does not hold' | 'not checked';

export interface Assumption {
  readonly id: string;
  readonly statement: string;
  verdict: Verdict;
  detail: string;
}

/** What the self-check proves or disproves, in the order it prints them. */
export function assumptions(): Assumption[] {
  const a = (id: string, statement: string): Assumption => ({ id, statement, verdict: 'not checked', detail: 'its step did not run' });
  return [
    a('build-memory', 'the memory addon builds on its own (cmake, Xcode command line tools)'),
    a('build-bridge', 'the CoreML bridge builds on its own (Objective-C++ with ARC, no unguarded API newer than macOS 13)'),
    a('darwin-tests', 'the darwin-only tests pass against the real bridge'),
    a('nsrange-fixed', 'a fixed axis inside a range constraint is an NSRange of length 1 (sizeRangeForDimension)'),
    a('nsrange-upper', 'a flexible axis takes location + length − 1 and refuses location + length'),
    a('spec-compiled', "a compiled .mlmodelc's metadata.json keeps its package's specification version"),
    a('spec-too-new', 'CoreML refuses a package whose specification version this macOS does not know'),
    a('compute-units', 'predictions are right on every compute-unit setting (all, cpu, cpu-gpu, cpu-ane)'),
    a('output-backings', 'CoreML writes a prediction into the output backing the bridge offers (no copy)'),
    a('compile-cache', 'a package compiled once is loaded from the compile cache afterwards'),
    a('golden-blocks', `every converted golden block matches PyTorch within ${BLOCK_TOLERANCE} relative on every setting`),
    a('generate', 'generate --backend coreml matches --backend onnx (same model, seed) on every setting'),
    a('ios-build', 'the iPhone runner app builds and signs for iOS (cmake -G Xcode, xcodebuild)'),
    a('ios-runner', 'device setup installs, fills and starts the app; it answers through usbmuxd with its memory (os_proc_available_memory)'),
    a('ios-generate', 'generate --device (the iPhone) matches --backend coreml on the Mac (same model, seed)'),
  ];
}

export function verdictLine(assumption: Assumption): string {
  return `${assumption.verdict.padEnd(13)} ${assumption.statement}${assumption.detail === '' ? '' : ` — ${assumption.detail}`}`;
}

/** Peak signal-to-noise ratio of two 8-bit images of one size, in dB (Infinity when identical). */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`image sizes differ: ${a.length} and ${b.length} bytes`);
  let squared = 0;
  for (let i = 0; i < a.length; i++) squared += (a[i]! - b[i]!) ** 2;
  const mse = squared / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/** The refusal off macOS: one polite line, nothing run. */
export function notMacMessage(platform: string): string {
  return (
    `check:mac: this is ${platform}; the Mac self-check needs macOS on Apple silicon and ran nothing. ` +
    'On a Mac: npm ci && npm run check:mac, then paste the whole output into the bug report.'
  );
}

// ------------------------------------------------------------------------------------------------------------------

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function section(title: string): void {
  say();
  say(`== ${title}`);
}

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): { ok: boolean; output: string } {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 256 << 20 });
  return { ok: result.status === 0, output: `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}` };
}

function firstLine(command: string, args: readonly string[]): string {
  const { ok, output } = run(command, args);
  return ok ? (output.trim().split('\n')[0] ?? '') : 'not found';
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

const ms = (value: number): string => `${value.toFixed(1)} ms`;

function rawRanges(feature: FeatureDescription): string {
  const constraint = feature.shapeConstraint;
  if (constraint.kind === 'unspecified') return `${feature.name} [${feature.shape.join(', ')}]: no flexible axes`;
  if (constraint.kind === 'enumerated') return `${feature.name}: enumerated ${JSON.stringify(constraint.shapes)}`;
  const raw = constraint.ranges.map(({ location, length }) => `{${location}, ${length}}`).join(' ');
  const bounds = sizeBounds(feature).map(([min, max]) => `${min}..${max < 0 ? '∞' : max}`).join(' ');
  return `${feature.name} default [${feature.shape.join(', ')}]: NSRanges ${raw} → read as ${rangeReading(feature)}: ${bounds}`;
}

function environment(): void {
  section('machine');
  say(`macOS ${firstLine('sw_vers', ['-productVersion'])} (${firstLine('sw_vers', ['-buildVersion'])}), ${firstLine('uname', ['-m'])}`);
  say(`chip: ${firstLine('sysctl', ['-n', 'machdep.cpu.brand_string'])}; memory: ${firstLine('sysctl', ['-n', 'hw.memsize'])} bytes`);
  say(`node ${process.version}; Xcode command line tools: ${firstLine('xcode-select', ['-p'])}; ${firstLine('cmake', ['--version'])}`);
  say(`python3: ${firstLine('python3', ['--version'])}; commit ${firstLine('git', ['rev-parse', '--short', 'HEAD'])}`);
}

function build(checks: Map<string, Assumption>): boolean {
  section('build');
  const dist = run('npm', ['run', 'build']);
  if (!dist.ok) say(`npm run build failed:\n${tail(dist.output)}`);
  const native = run(process.execPath, ['scripts/build-native.mjs']);
  say(native.output.trim());
  const built = (file: string): boolean => existsSync(join(ROOT, 'build', 'Release', file));
  for (const [id, file, log] of [
    ['build-memory', 'sora_memory.node', 'native-sora_memory.log'],
    ['build-bridge', 'sora_coreml.node', 'native-sora_coreml.log'],
  ] as const) {
    const check = checks.get(id)!;
    check.verdict = built(file) ? 'holds' : 'does not hold';
    check.detail = built(file) ? `build/Release/${file}` : `see build/${log}`;
    if (!built(file) && existsSync(join(ROOT, 'build', log))) say(`${log}:\n${tail(readFileSync(join(ROOT, 'build', log), 'utf8'))}`);
  }
  return dist.ok && built('sora_coreml.node');
}

function darwinTests(checks: Map<string, Assumption>): void {
  section('darwin-only tests');
  const files = ['test/coreml-bridge.darwin.test.ts', 'test/build-native.test.ts', 'test/coreml-backend.fake.test.ts', 'test/coreml-findings.fake.test.ts'];
  const result = run('npx', ['vitest', 'run', ...files]);
  const summary = result.output.split('\n').filter((line) => /Test Files|Tests |FAIL|×/.test(line));
  say(summary.join('\n') || tail(result.output));
  const check = checks.get('darwin-tests')!;
  check.verdict = result.ok ? 'holds' : 'does not hold';
  check.detail = summary.find((line) => line.includes('Tests '))?.trim() ?? 'see above';
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

function fail(check: Assumption, detail: string): void {
  check.verdict = 'does not hold';
  check.detail = detail;
}

async function probe(bridge: CoreMLBridge, scratch: string, checks: Map<string, Assumption>): Promise<void> {
  section('probe package (y = 2x + 1, x [1, 16, 2..8, 1..4], spec 7)');
  const packagePath = writeMlpackage(join(scratch, 'probe.mlpackage'));
  const compiledPath = join(scratch, 'probe.mlmodelc');
  const compile = await timed(() => bridge.compileModel('probe', packagePath, compiledPath));
  const requirement = await packageRequirement(compiledPath);
  say(`compiled in ${ms(compile.ms)}; compiled metadata: specification ${requirement.specificationVersion}, macOS ${requirement.macos}`);
  const spec = checks.get('spec-compiled')!;
  spec.verdict = requirement.specificationVersion === 7 ? 'holds' : 'does not hold';
  spec.detail = `metadata.json says ${requirement.specificationVersion ?? 'nothing'} (package: 7)`;

  const rows: string[] = [];
  const inPlace: string[] = [];
  let wrong = '';
  for (const units of COMPUTE_UNITS) {
    const load = await timed(() => bridge.loadModel('probe', compiledPath, units));
    const x = Float32Array.from({ length: 16 * 4 * 3 }, (_, i) => (i % 17) / 17 - 0.5);
    const feed = [{ name: 'x', dataType: 'float32' as const, shape: [1, 16, 4, 3], data: x }];
    const first = await timed(() => bridge.predict(load.value.id, feed));
    const second = await timed(() => bridge.predict(load.value.id, feed, { y: first.value.y!.shape }));
    const y = new Float32Array(second.value.y!.data);
    const error = Math.max(...Array.from(x, (value, i) => Math.abs(y[i]! - (2 * value + 1))));
    if (!(error <= BLOCK_TOLERANCE)) wrong += ` ${units}: max error ${error}`;
    if (second.value.y!.inPlace === true) inPlace.push(units);
    if (units === 'cpu') {
      say(`raw ranges: ${rawRanges(load.value.inputs.find((feature) => feature.name === 'x')!)}`);
      await nsrangeChecks(bridge, load.value.id, load.value.inputs, checks);
    }
    rows.push(`${units.padEnd(8)} load ${ms(load.ms).padStart(10)}  predict ${ms(first.ms).padStart(10)}  into backing ${ms(second.ms).padStart(10)}  in place ${second.value.y!.inPlace === true}  max error ${error.toExponential(1)}`);
    await bridge.unloadModel(load.value.id);
  }
  say(rows.join('\n'));
  const units = checks.get('compute-units')!;
  units.verdict = wrong === '' ? 'holds' : 'does not hold';
  units.detail = wrong === '' ? `all four within ${BLOCK_TOLERANCE}` : wrong.trim();
  const backings = checks.get('output-backings')!;
  backings.verdict = inPlace.length === COMPUTE_UNITS.length ? 'holds' : 'does not hold';
  backings.detail = `in place on ${inPlace.join(', ') || 'no setting'} (otherwise the bridge copies, which still works)`;

  const future = writeMlpackage(join(scratch, 'future.mlpackage'), { specificationVersion: 99 });
  const refused = await bridge.compileModel('future', future, join(scratch, 'future.mlmodelc')).then(
    () => undefined,
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
  const tooNew = checks.get('spec-too-new')!;
  tooNew.verdict = refused === undefined ? 'does not hold' : 'holds';
  tooNew.detail = refused === undefined ? 'a spec-99 package compiled' : `CoreML: ${refused.split('\n')[0]!.slice(0, 160)}`;

  const cacheDir = join(scratch, 'probe-cache');
  const block = { name: 'probe', path: packagePath, weightBytes: 0 };
  const [first, second] = [new CoreMLBackend(bridge, { cacheDir }), new CoreMLBackend(bridge, { cacheDir })];
  for (const backend of [first, second]) await backend.unload(await backend.load(block));
  const cache = checks.get('compile-cache')!;
  const events = [first.cache.events, second.cache.events];
  cache.verdict = events[0]!.compiles === 1 && events[1]!.hits === 1 && events[1]!.compiles === 0 ? 'holds' : 'does not hold';
  cache.detail = `first load ${JSON.stringify(events[0])}, second ${JSON.stringify(events[1])}`;
}

/** Sizes at the documented bounds go through CoreML itself (the bridge, not the backend's own shape check). */
async function nsrangeChecks(bridge: CoreMLBridge, id: number, inputs: readonly FeatureDescription[], checks: Map<string, Assumption>): Promise<void> {
  const x = inputs.find((feature) => feature.name === 'x')!;
  const fixed = checks.get('nsrange-fixed')!;
  const ranges = x.shapeConstraint.kind === 'range' ? x.shapeConstraint.ranges : [];
  fixed.verdict = ranges[1]?.location === 16 && ranges[1]?.length === 1 ? 'holds' : 'does not hold';
  fixed.detail = `axis 1 (fixed 16) reported as {${ranges[1]?.location}, ${ranges[1]?.length}}; the backend reads it as ${rangeReading(x)} either way`;
  const predict = (rows: number) =>
    bridge.predict(id, [{ name: 'x', dataType: 'float32', shape: [1, 16, rows, 3], data: new Float32Array(16 * rows * 3) }]).then(
      () => 'accepted',
      () => 'refused',
    );
  const [last, pastEnd] = [await predict(8), await predict(9)];
  const upper = checks.get('nsrange-upper')!;
  upper.verdict = last === 'accepted' && pastEnd === 'refused' ? 'holds' : 'does not hold';
  upper.detail = `axis 2 {${ranges[2]?.location}, ${ranges[2]?.length}}: size 8 ${last}, size 9 ${pastEnd}`;
}

/** An interpreter with coremltools, torch and onnx: --python, or the venv of an earlier run, or a new venv. */
function python(flag: string | undefined): string | undefined {
  if (flag !== undefined) return flag;
  const venv = join(WORK, 'venv');
  const interpreter = join(venv, 'bin', 'python');
  const ready = () => run(interpreter, ['-c', 'import coremltools, torch, onnx']).ok;
  if (existsSync(interpreter) && ready()) return interpreter;
  say(`making ${venv} (python3 -m venv --system-site-packages; pip install coremltools==8.3 torch==2.5.0 onnx)`);
  const made = run('python3', ['-m', 'venv', '--system-site-packages', venv]);
  const installed = made.ok && run(interpreter, ['-m', 'pip', 'install', '--quiet', 'coremltools==8.3', 'torch==2.5.0', 'onnx']);
  if (installed && installed.ok && ready()) return interpreter;
  say(`no Python with coremltools: ${tail(installed ? installed.output : made.output, 5)}`);
  return undefined;
}

async function goldenBlocks(bridge: CoreMLBridge, interpreter: string, scratch: string, checks: Map<string, Assumption>): Promise<void> {
  section('golden blocks (tiny model, PyTorch outputs) on every compute-unit setting');
  const out = join(WORK, 'golden-blocks');
  const converted = run(interpreter, ['scripts/coreml_golden_blocks.py', '--out', out]);
  const report = existsSync(join(out, 'report.json'))
    ? (JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { converted: Record<string, string>; failed: Record<string, string> })
    : undefined;
  const check = checks.get('golden-blocks')!;
  if (report === undefined) return fail(check, `conversion failed: ${tail(converted.output, 3)}`);
  for (const [stem, why] of Object.entries(report.failed)) say(`${stem}: not converted (${why})`);
  const worst: string[] = [];
  for (const stem of Object.keys(report.converted)) {
    const golden = await readGolden(`${stem}.json`);
    const path = join(out, report.converted[stem]!);
    const requirement = await packageRequirement(path);
    const rows: string[] = [];
    for (const units of COMPUTE_UNITS) {
      const backend = new CoreMLBackend(bridge, { cacheDir: join(scratch, 'cache'), computeUnits: units });
      const handle = await backend.load({ name: golden.block, path, weightBytes: 0 });
      const predicted = await timed(async () => hostOutputs(await backend.run(handle, golden.inputs)));
      const errors = Object.entries(golden.outputs).map(([name, expected]) => {
        const actual = predicted.value[name];
        return actual === undefined ? Infinity : maxRelativeError(values(actual), values(expected));
      });
      const error = Math.max(...errors);
      if (!(error <= BLOCK_TOLERANCE)) worst.push(`${stem} on ${units}: ${error.toExponential(1)}`);
      const [stats] = backend.stats();
      rows.push(`  ${units.padEnd(8)} compile ${ms(stats!.compileMs).padStart(10)}  load ${ms(stats!.loadMs).padStart(10)}  predict ${ms(predicted.ms).padStart(10)}  max rel error ${error.toExponential(1)}`);
      await backend.close();
    }
    say(`${stem}: specification ${requirement.specificationVersion}, macOS ${requirement.macos}`);
    say(rows.join('\n'));
  }
  const count = Object.keys(report.converted).length;
  check.verdict = worst.length === 0 && count > 0 ? 'holds' : 'does not hold';
  check.detail = worst.length > 0 ? worst.join('; ') : `${count} converted blocks (${Object.keys(report.failed).length} did not convert, listed above)`;
}

function values(tensor: Tensor): ArrayLike<number> {
  return tensor.data instanceof BigInt64Array ? Array.from(tensor.data, Number) : (tensor.data as ArrayLike<number>);
}

/** The CoreML model folder for step 5, converting models/tiny when the converter supports it. */
function coremlModel(flag: string | undefined, interpreter: string | undefined): string | { reason: string } {
  if (flag !== undefined) return resolve(flag);
  const shipped = join(ROOT, 'models', 'tiny-coreml');
  if (existsSync(join(shipped, 'manifest.json'))) return shipped;
  if (!readFileSync(join(ROOT, 'scripts', 'make_tiny_model.py'), 'utf8').includes('--format')) {
    return { reason: 'no CoreML model folder: the repository ships none yet and make_tiny_model.py has no --format coreml' };
  }
  if (interpreter === undefined) return { reason: 'no Python with coremltools to convert models/tiny' };
  const out = join(WORK, 'tiny-coreml');
  rmSync(out, { recursive: true, force: true }); // ours, from an earlier run: converted afresh
  const converted = run(interpreter, ['scripts/make_tiny_model.py', '--format', 'coreml', '--out', out]);
  return converted.ok ? out : { reason: `converting models/tiny failed: ${tail(converted.output, 3)}` };
}

async function modelBlocks(bridge: CoreMLBridge, dir: string, scratch: string): Promise<void> {
  section(`model blocks of ${dir}`);
  const model = await loadModel(dir);
  const backend = new CoreMLBackend(bridge, { cacheDir: join(scratch, 'cache') });
  for (const block of model.blocks) {
    const source = blockSource(block);
    const requirement = await packageRequirement(source.path);
    const handle = await backend.load(source);
    const stats = backend.stats().at(-1)!;
    say(`${block.name}: specification ${requirement.specificationVersion}, macOS ${requirement.macos}, units ${stats.device}, compile ${ms(stats.compileMs)}, load ${ms(stats.loadMs)}`);
    for (const feature of backend.features(handle).inputs) say(`  ${rawRanges(feature)}`);
    await backend.unload(handle);
  }
  await backend.close();
}

async function frames(folder: string): Promise<Uint8Array[]> {
  const names = readdirSync(folder).filter((name) => name.endsWith('.png')).sort();
  return Promise.all(names.map(async (name) => new Uint8Array(await sharp(join(folder, name)).removeAlpha().raw().toBuffer())));
}

async function generateRuns(dir: string, onnxDir: string, scratch: string, check: Assumption): Promise<void> {
  section(`generate: ${dir} (CoreML) against ${onnxDir} (ONNX), seed 42, 10 steps`);
  const model = await loadModel(dir);
  const threshold = model.blocks.every((block) => block.dtype === 'float32') ? PSNR_FLOAT32 : PSNR_FLOAT16;
  const generate = (name: string, args: readonly string[]): { ok: boolean; output: string; folder: string } => {
    const folder = join(scratch, 'frames', name);
    const common = ['bin/ondevice-sora', 'generate', 'a red ball bouncing', '-o', folder, '--format', 'frames', '--seed', '42', '--steps', '10'];
    return { ...run(process.execPath, [...common, ...args]), folder };
  };
  const reference = generate('onnx', ['--model', onnxDir, '--backend', 'onnx']);
  if (!reference.ok) return fail(check, `the ONNX run failed: ${tail(reference.output, 2)}`);
  const expected = await frames(reference.folder);
  const problems: string[] = [];
  for (const units of ['per-block', ...COMPUTE_UNITS] as const) {
    const flags = units === 'per-block' ? [] : ['--compute-units', units];
    const result = generate(units, ['--model', dir, '--backend', 'coreml', ...flags]);
    if (!result.ok) {
      problems.push(`${units}: ${tail(result.output, 1)}`);
      say(`${units}: failed\n${tail(result.output, 5)}`);
      continue;
    }
    const actual = await frames(result.folder);
    const ratio = Math.min(...actual.map((frame, i) => psnr(frame, expected[i] ?? new Uint8Array(0))));
    const sidecar = JSON.parse(readFileSync(`${result.folder}.json`, 'utf8')) as { timingsMs?: Record<string, number> };
    say(`${units.padEnd(9)} ${actual.length} frames, lowest PSNR ${ratio.toFixed(1)} dB; timings ${JSON.stringify(sidecar.timingsMs ?? {})}`);
    if (actual.length !== expected.length || !(ratio >= threshold)) problems.push(`${units}: ${ratio.toFixed(1)} dB`);
  }
  check.verdict = problems.length === 0 ? 'holds' : 'does not hold';
  check.detail = problems.length === 0 ? `every setting ≥ ${threshold} dB` : `${problems.join('; ')} (needs ≥ ${threshold} dB)`;
}

const NO_IPHONE = 'not asked for (--iphone, with an iPhone attached and --team)';

/** Step 6: the iPhone runner app on the one attached iPhone, against the Mac's CoreML run of the same model. */
async function iphone(team: string | undefined, model: string, scratch: string, checks: Map<string, Assumption>): Promise<void> {
  section('iPhone');
  const build = checks.get('ios-build')!;
  const runner = checks.get('ios-runner')!;
  const generate = checks.get('ios-generate')!;
  const cli = (args: readonly string[]): { ok: boolean; output: string } => run(process.execPath, ['bin/ondevice-sora', ...args]);
  const listed = cli(['devices', '--json']);
  say(listed.output.trim());
  const devices = listed.ok ? (JSON.parse(listed.output) as { devices: { udid: string }[] }).devices : [];
  if (devices.length !== 1) {
    for (const check of [build, runner, generate]) check.detail = `devices lists ${devices.length} iPhones; attach exactly one`;
    return;
  }
  const udid = devices[0]!.udid;
  if (team === undefined) {
    for (const check of [build, runner, generate]) check.detail = 'no --team (or $ONDEVICE_SORA_TEAM) to sign the app with';
    return;
  }
  const setup = cli(['device', 'setup', '--device', udid, '--model', model, '--team', team]);
  say(tail(setup.output, 10));
  const built = setup.ok || !/build and sign|generate the Xcode project|not found/.test(setup.output);
  build.verdict = built ? 'holds' : 'does not hold';
  build.detail = built ? '' : tail(setup.output, 1);
  if (!setup.ok) return fail(runner, tail(setup.output, 1));
  // The app needs a moment to start listening after its launch; the first bench that reaches it says hello.
  let hello: { ok: boolean; output: string } = { ok: false, output: '' };
  for (let attempt = 0; attempt < 20 && !hello.ok; attempt++) {
    if (attempt > 0) await new Promise((settle) => setTimeout(settle, 1000));
    hello = cli(['bench', '--device', udid, '--model', model, '--backend', 'remote', '--steps', '2', '--repeat', '1', '--json']);
  }
  if (!hello.ok) return fail(runner, tail(hello.output, 1));
  const report = JSON.parse(hello.output) as { backend: { device: string }; remote: unknown };
  runner.verdict = 'holds';
  runner.detail = report.backend.device;
  say(`bench --device ${udid}: ${JSON.stringify(report.remote)}`);
  const framesOf = async (name: string, args: readonly string[]): Promise<Uint8Array[] | string> => {
    const folder = join(scratch, 'iphone', name);
    const result = cli(['generate', 'a red ball bouncing', '-o', folder, '--format', 'frames', '--seed', '42', '--steps', '10', '--model', model, ...args]);
    return result.ok ? frames(folder) : tail(result.output, 1);
  };
  const mac = await framesOf('mac', ['--backend', 'coreml']);
  const phone = await framesOf('phone', ['--device', udid]);
  if (typeof mac === 'string' || typeof phone === 'string') return fail(generate, typeof phone === 'string' ? `iPhone: ${phone}` : `Mac: ${mac}`);
  const threshold = (await loadModel(model)).blocks.every((block) => block.dtype === 'float32') ? PSNR_FLOAT32 : PSNR_FLOAT16;
  const lowest = Math.min(...phone.map((frame, i) => psnr(frame, mac[i] ?? new Uint8Array(0))));
  generate.verdict = phone.length === mac.length && lowest >= threshold ? 'holds' : 'does not hold';
  generate.detail = `${phone.length} frames, lowest PSNR ${lowest.toFixed(1)} dB (needs ≥ ${threshold} dB)`;
}

async function main(): Promise<number> {
  if (process.platform !== 'darwin') {
    say(notMacMessage(process.platform));
    return NOT_MAC_EXIT;
  }
  const { values: flags } = parseArgs({
    options: {
      python: { type: 'string' },
      'no-python': { type: 'boolean' },
      'coreml-model': { type: 'string' },
      'onnx-model': { type: 'string', default: join(ROOT, 'models', 'tiny') },
      iphone: { type: 'boolean' },
      team: { type: 'string' },
    },
  });
  const checks = new Map(assumptions().map((assumption) => [assumption.id, assumption]));
  say('ondevice-sora Mac self-check: paste everything below into the bug report');
  environment();
  mkdirSync(WORK, { recursive: true });
  const scratch = mkdtempSync(join(tmpdir(), 'sora-check-mac-'));
  try {
    if (build(checks)) {
      darwinTests(checks);
      const bridge = loadCoreMLBridge();
      await step(() => probe(bridge, scratch, checks), checks.get('compute-units')!);
      const interpreter = flags['no-python'] === true ? undefined : python(flags.python);
      if (interpreter === undefined) checks.get('golden-blocks')!.detail = 'no Python with coremltools (--python, or let it make the venv)';
      else await step(() => goldenBlocks(bridge, interpreter, scratch, checks), checks.get('golden-blocks')!);
      const model = coremlModel(flags['coreml-model'], interpreter);
      if (typeof model !== 'string') checks.get('generate')!.detail = model.reason;
      else {
        await step(() => modelBlocks(bridge, model, scratch), checks.get('generate')!);
        await step(() => generateRuns(model, resolve(flags['onnx-model']!), scratch, checks.get('generate')!), checks.get('generate')!);
        if (flags.iphone === true) {
          const team = flags.team ?? (process.env.ONDEVICE_SORA_TEAM || undefined);
          await step(() => iphone(team, model, scratch, checks), checks.get('ios-runner')!);
        }
      }
      if (flags.iphone !== true) for (const id of ['ios-build', 'ios-runner', 'ios-generate']) checks.get(id)!.detail = NO_IPHONE;
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  section('assumptions');
  for (const assumption of checks.values()) say(verdictLine(assumption));
  return [...checks.values()].some((assumption) => assumption.verdict === 'does not hold') ? 1 : 0;
}

/** A step that throws marks its assumption as not holding, with the error, and the self-check goes on. */
async function step(work: () => Promise<void>, check: Assumption): Promise<void> {
  try {
    await work();
  } catch (error) {
    say(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    fail(check, `${error instanceof Error ? error.message : String(error)}`.split('\n')[0]!.slice(0, 300));
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
