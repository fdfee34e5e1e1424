/**
 * Diagnostics go through pino to stderr, so stdout carries only what a command prints for the user (tables, JSON).
 * On a terminal the lines are formatted for people; otherwise they stay JSON lines for tools.
 */
import { createRequire } from 'node:module';
import type { Logger, pino as Pino } from 'pino';
import type { PrettyStream } from 'pino-pretty';
import { colorEnabled } from './color.js';
import { LOG_LEVELS, type LogLevel } from './log-levels.js';

export { LOG_LEVELS, type LogLevel } from './log-levels.js';
export type { Logger };

const require = createRequire(import.meta.url);

// Loaded only for a terminal: pino-pretty and its dependencies cost ~70 ms at every start, and logs to files and
// pipes are JSON lines. It is CommonJS, so a synchronous require keeps createLogger synchronous.
function prettyStream(options: Record<string, unknown>): PrettyStream {
  const pretty = require('pino-pretty') as (options: Record<string, unknown>) => PrettyStream;
  return pretty(options);
}

function pinoLogger(level: LogLevel, terminal: boolean): Logger {
  const { pino } = require('pino') as { pino: typeof Pino };
  // Synchronous writes: the CLI sets process.exitCode and returns, and a buffered line must not be lost then.
  const destination = terminal
    ? prettyStream({ destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss', colorize: colorEnabled(process.stderr) })
    : pino.destination({ fd: 2, sync: true });
  return pino({ level, base: undefined }, destination);
}

/**
 * A pino logger, made when a line is first logged at an enabled level: pino and its dependencies cost ~15 ms of a
 * command's start (issue 17), and at the default level most runs log nothing. Below the level, a call is a no-op
 * without pino, as pino's own is; anything else goes to the pino logger.
 */
export function createLogger(level: LogLevel, terminal = process.stderr.isTTY === true): Logger {
  let made: Logger | undefined;
  const logger = (): Logger => (made ??= pinoLogger(level, terminal));
  const rank = (name: string): number => LOG_LEVELS.indexOf(name as LogLevel);
  const enabled = (name: string): boolean => name !== 'silent' && rank(name) >= 0 && rank(name) >= rank(level);
  const ignore = (): void => undefined;
  return new Proxy({} as Logger, {
    get(_target, key) {
      if (key === 'level') return made?.level ?? level;
      if (key === 'isLevelEnabled') return enabled;
      if (typeof key === 'string' && key !== 'silent' && rank(key) >= 0) {
        if (!enabled(key)) return ignore;
      }
      const value: unknown = Reflect.get(logger(), key);
      return typeof value === 'function' ? value.bind(logger()) : value;
    },
  });
}
