/** CLI entry: runs the program and turns every failure into one line on stderr and the error code's exit status. */
import { CommanderError } from 'commander';
import { errnoCode, ERROR_EXIT_CODES, errorMessage, isSoraError, SoraError, systemError } from '../errors.js';
import { workersStarted } from '../runtime/onnx-worker-start.js';
import { createProgram } from './program.js';

/** The status of a process that SIGPIPE ended (128 + 13), which is what shells report for `yes | head`. */
export const EXIT_OUTPUT_CLOSED = 141;

export async function main(argv: readonly string[]): Promise<number> {
  endQuietlyWhenReaderLeaves();
  const program = createProgram();
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    return report(error, program.opts<{ verbose?: boolean }>().verbose === true);
  }
}

function report(error: unknown, verbose: boolean): number {
  // Commander has already printed its own message (usage errors) or the help/version text.
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : ERROR_EXIT_CODES.USAGE;
  const failure = isSoraError(error)
    ? error
    : (systemError(error) ?? new SoraError('INTERNAL', `unexpected error: ${errorMessage(error)}`, { cause: error }));
  process.stderr.write(`error: ${failure.message.replace(/\s*\n\s*/g, ' ')}\n`);
  if (verbose) process.stderr.write(`${stackWithCauses(failure)}\n`);
  return failure.exitCode;
}

function stackWithCauses(error: unknown): string {
  const own = error instanceof Error ? (error.stack ?? error.message) : String(error);
  const cause = error instanceof Error ? error.cause : undefined;
  return cause === undefined ? own : `${own}\ncaused by: ${stackWithCauses(cause)}`;
}

/**
 * A reader that went away (`ondevice-sora --help | head`) ends the process quietly, as SIGPIPE ends other tools.
 * Node ignores SIGPIPE, so the failed write arrives as an 'error' event, which unhandled prints a stack trace.
 * Nothing is half-written by this exit: stdout carries results only after the outputs are in place.
 */
function endQuietlyWhenReaderLeaves(): void {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.listenerCount('error') > 0) continue;
    stream.on('error', (error) => {
      if (errnoCode(error) !== 'EPIPE') throw error;
      // Not while an ONNX Runtime worker is still starting (generate starts them before it checks its flags).
      void workersStarted().then(() => process.exit(EXIT_OUTPUT_CLOSED));
    });
  }
}
