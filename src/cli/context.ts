/** What every command gets from the global options: a logger, output helpers, and the flags themselves. */
import type { Command } from 'commander';
import * as z from 'zod';
import { painter, type Color } from '../color.js';
import { createLogger, LOG_LEVELS, type Logger } from '../logging.js';

const GlobalOptions = z.object({
  logLevel: z.enum(LOG_LEVELS),
  verbose: z.boolean().default(false),
  json: z.boolean().default(false),
  quiet: z.boolean().default(false),
});
export type GlobalOptions = z.infer<typeof GlobalOptions>;

export interface CliContext {
  readonly options: GlobalOptions;
  readonly logger: Logger;
  /** The command's result on stdout: text, or with --json exactly one JSON document. */
  result(text: string, json: unknown): void;
  /**
   * A progress line for people watching a terminal, on stderr (never mixed into stdout or --json output). Silent
   * with --quiet and when stderr is not a terminal, where it would only clutter logs and error output.
   */
  status(text: string): void;
  /**
   * A progress line of a long run (eval, bench) on stderr, terminal or not: under nohup or in CI a silent quarter of
   * an hour looks like a hang. Silent with --quiet.
   */
  progress(text: string): void;
  /** An error the command goes on after (a bad line of a batch): one `error:` line on stderr, also with --quiet. */
  error(text: string): void;
  /** Colours text for stdout, or leaves it plain (not a terminal, NO_COLOR, --json). */
  paint(text: string, color: Color): string;
}

export function cliContext(command: Command): CliContext {
  const options = GlobalOptions.parse(command.optsWithGlobals());
  const root = rootOf(command);
  // --quiet lowers diagnostics to errors unless a log level was asked for explicitly.
  const level = options.quiet && root.getOptionValueSource('logLevel') === 'default' ? 'error' : options.logLevel;
  return {
    options,
    logger: createLogger(level),
    result(text, json) {
      process.stdout.write(options.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
    },
    status(text) {
      if (!options.quiet && process.stderr.isTTY) process.stderr.write(`${text}\n`);
    },
    progress(text) {
      if (!options.quiet) process.stderr.write(`${text}\n`);
    },
    error(text) {
      process.stderr.write(`error: ${text}\n`);
    },
    paint: options.json ? (text) => text : painter(process.stdout),
  };
}

function rootOf(command: Command): Command {
  return command.parent === null ? command : rootOf(command.parent);
}
