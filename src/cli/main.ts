/** CLI entry: runs the program and turns every failure into one line on stderr and the error code's exit status. */
import { CommanderError } from 'commander';
import { ERROR_EXIT_CODES, errorMessage, isSoraError, SoraError } from '../errors.js';
import { createProgram } from './program.js';

export async function main(argv: readonly string[]): Promise<number> {
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
    : new SoraError('INTERNAL', `unexpected error: ${errorMessage(error)}`, { cause: error });
  process.stderr.write(`error: ${failure.message.replace(/\s*\n\s*/g, ' ')}\n`);
  if (verbose) process.stderr.write(`${stackWithCauses(failure)}\n`);
  return failure.exitCode;
}

function stackWithCauses(error: unknown): string {
  const own = error instanceof Error ? (error.stack ?? error.message) : String(error);
  const cause = error instanceof Error ? error.cause : undefined;
  return cause === undefined ? own : `${own}\ncaused by: ${stackWithCauses(cause)}`;
}
