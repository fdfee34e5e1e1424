/** `doctor`: what this machine offers the tool, and whether `generate` can run here. */
import { availableParallelism, cpus, freemem, totalmem } from 'node:os';
import type { Command } from 'commander';
import { errorMessage, SoraError } from '../../errors.js';
import { findFfmpeg } from '../../video/ffmpeg.js';
import { cliContext, type CliContext } from '../context.js';
import { formatBytes, formatTable } from '../format.js';

/** From package.json "engines". */
const MIN_NODE = [20, 17] as const;

export interface Check {
  readonly name: string;
  /** False when `generate` cannot run without it. */
  readonly ok: boolean;
  readonly detail: string;
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check Node.js, ONNX Runtime, ffmpeg and memory; exits non-zero when generate cannot run here')
    .action(async (_options: unknown, command: Command) => doctor(cliContext(command)));
}

function checkNode(): Check {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const ok = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
  return { name: 'node', ok, detail: `${process.version} (needs >= ${MIN_NODE.join('.')})` };
}

async function checkOnnxRuntime(): Promise<Check> {
  try {
    const ort = await import('onnxruntime-node');
    const backends = ort.listSupportedBackends();
    const names = (bundled: boolean): string =>
      backends
        .filter((b) => b.bundled === bundled)
        .map((b) => b.name)
        .join(', ') || 'none';
    const detail = `onnxruntime-node ${ort.env.versions.node ?? '?'}; bundled: ${names(true)}; not bundled: ${names(false)}`;
    return { name: 'onnxruntime', ok: true, detail };
  } catch (error) {
    return { name: 'onnxruntime', ok: false, detail: `cannot load onnxruntime-node: ${errorMessage(error)}` };
  }
}

/** The ffmpeg that generate would use (same search: FFMPEG_PATH, PATH, the bundled one). */
async function checkFfmpeg(): Promise<Check> {
  try {
    const ffmpeg = await findFfmpeg(undefined);
    return { name: 'ffmpeg', ok: true, detail: `${ffmpeg.version} (${ffmpeg.path}, from ${ffmpeg.source})` };
  } catch (error) {
    return { name: 'ffmpeg', ok: false, detail: errorMessage(error) };
  }
}

function memoryCheck(): Check {
  return { name: 'memory', ok: true, detail: `${formatBytes(totalmem())} total, ${formatBytes(freemem())} available` };
}

function cpuCheck(): Check {
  return { name: 'cpu', ok: true, detail: `${availableParallelism()} threads, ${cpus()[0]?.model.trim() ?? 'unknown model'}` };
}

async function doctor(context: CliContext): Promise<void> {
  const checks = [checkNode(), await checkOnnxRuntime(), await checkFfmpeg(), memoryCheck(), cpuCheck()];
  const failed = checks.filter((check) => !check.ok);
  const table = formatTable(checks.map((check) => [check.name, check.ok ? 'ok' : 'FAIL', check.detail]));
  context.result(table, { ok: failed.length === 0, checks });
  if (failed.length > 0) {
    throw new SoraError('DEPENDENCY', `generate cannot run here: ${failed.map((check) => check.name).join(', ')} not usable`);
  }
}
