/**
 * Diagnostics go through pino to stderr, so stdout carries only what a command prints for the user (tables, JSON).
 * On a terminal the lines are formatted for people; otherwise they stay JSON lines for tools.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { colorEnabled } from './color.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type { Logger };

export function createLogger(level: LogLevel, terminal = process.stderr.isTTY === true): Logger {
  // Synchronous writes: the CLI sets process.exitCode and returns, and a buffered line must not be lost then.
  const destination = terminal
    ? pretty({ destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss', colorize: colorEnabled(process.stderr) })
    : pino.destination({ fd: 2, sync: true });
  return pino({ level, base: undefined }, destination);
}
