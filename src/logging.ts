/**
 * Diagnostics go through pino to stderr, so stdout carries only what a command prints for the user (tables, JSON).
 * On a terminal the lines are formatted for people; otherwise they stay JSON lines for tools.
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type { PrettyStream } from 'pino-pretty';
import { colorEnabled } from './color.js';
import type { LogLevel } from './log-levels.js';

export { LOG_LEVELS, type LogLevel } from './log-levels.js';
export type { Logger };

// Loaded only for a terminal: pino-pretty and its dependencies cost ~70 ms at every start, and logs to files and
// pipes are JSON lines. It is CommonJS, so a synchronous require keeps createLogger synchronous.
function prettyStream(options: Record<string, unknown>): PrettyStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as (options: Record<string, unknown>) => PrettyStream;
  return pretty(options);
}

export function createLogger(level: LogLevel, terminal = process.stderr.isTTY === true): Logger {
  // Synchronous writes: the CLI sets process.exitCode and returns, and a buffered line must not be lost then.
  const destination = terminal
    ? prettyStream({ destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss', colorize: colorEnabled(process.stderr) })
    : pino.destination({ fd: 2, sync: true });
  return pino({ level, base: undefined }, destination);
}
