/**
 * Runs scripts/convert_checkpoint.py (or scripts/compress_model.py, which prints the same unit lines) as a child
 * process (the model code is PyTorch; a separate process also keeps the conversion's memory apart from ours) and
 * turns its stdout into progress events: `config <component>: <name>
 * (<how chosen>)` lines, then one `[i/n] <block names>` line per exported unit. Its `error: …` message becomes a
 * one-line INPUT error; any other failure (a Python traceback) an INTERNAL one with the last line.
 */
import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import { packagePath } from '../package-root.js';

export const CONVERTER_SCRIPT = packagePath('scripts', 'convert_checkpoint.py');
const STDERR_KEPT = 64 * 1024;

export type ConverterEvent =
  | { readonly kind: 'config'; readonly text: string }
  | { readonly kind: 'unit'; readonly index: number; readonly total: number; readonly blocks: string };

const UNIT_LINE = /^\[(\d+)\/(\d+)\] (.+)$/;

export interface ConverterRun {
  readonly python: string;
  /** The script to run (default: scripts/convert_checkpoint.py); any script that speaks the same lines. */
  readonly script?: string;
  readonly args: readonly string[];
  readonly logger: Logger;
  readonly onEvent?: (event: ConverterEvent) => void;
  readonly signal?: AbortSignal;
}

function failure(code: number | null, stderr: string, script: string): SoraError {
  const lines = stderr.trimEnd().split('\n');
  const start = lines.findLastIndex((line) => line.startsWith('error: '));
  if (start >= 0) {
    const message = lines.slice(start).join(' ').replace(/^error: /, '').replace(/\s+/g, ' ');
    return new SoraError('INPUT', message);
  }
  const last = lines.at(-1)?.trim() || `exit status ${code}`;
  return new SoraError('INTERNAL', `scripts/${basename(script)} failed: ${last} (run with --log-level debug for its output)`);
}

export async function runConverter({ python, script = CONVERTER_SCRIPT, args, logger, onEvent, signal }: ConverterRun): Promise<void> {
  signal?.throwIfAborted();
  const child = spawn(python, [script, ...args], {
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT);
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const unit = UNIT_LINE.exec(line);
    if (unit !== null) onEvent?.({ kind: 'unit', index: Number(unit[1]), total: Number(unit[2]), blocks: unit[3]! });
    else if (line.startsWith('config ')) onEvent?.({ kind: 'config', text: line });
    else logger.debug({ line }, 'converter');
  });
  const stop = (): void => void child.kill('SIGTERM');
  signal?.addEventListener('abort', stop, { once: true });
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    signal?.throwIfAborted();
    logger.debug({ stderr }, 'converter stderr');
    if (code !== 0) throw failure(code, stderr, script);
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}
