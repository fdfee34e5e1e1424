import { displayPath } from './display-path.js';

/**
 * The one error type of the tool. `code` decides the exit status; `message` is the single line the CLI prints.
 */
export const ERROR_EXIT_CODES = {
  USAGE: 2, // bad CLI flag or argument
  INPUT: 3, // bad prompt file, prompt, or other user input
  MANIFEST: 4, // model folder or manifest.json invalid
  MODEL: 5, // a block file is missing, corrupt or does not match the contract
  BACKEND: 6, // the runtime backend failed (load or run)
  IO: 7, // output cannot be written, file system errors
  DEPENDENCY: 8, // a required external program or library is missing (ffmpeg, native addon)
  MEMORY: 9, // memory budget cannot be met
  QUEUE: 10, // the job queue (Redis) cannot be reached or refused us
  DOWNLOAD: 11, // a download failed: hub unreachable, access refused, file truncated or not matching its checksum
  INTERRUPTED: 130, // SIGINT (Ctrl-C): 128 + 2, the shells' convention
  TERMINATED: 143, // SIGTERM: 128 + 15
  INTERNAL: 70,
} as const;

export type ErrorCode = keyof typeof ERROR_EXIT_CODES;

export class SoraError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SoraError';
    this.code = code;
  }

  get exitCode(): number {
    return ERROR_EXIT_CODES[this.code];
  }
}

export function isSoraError(error: unknown): error is SoraError {
  return error instanceof SoraError;
}

/** The message of anything thrown, for wrapping foreign errors into a SoraError. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The errno code (`ENOSPC`, `EACCES`…) of a Node system error, if it is one. */
export function errnoCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

/**
 * What the user's system refused, by errno code: the cause is a full disk, a read-only mount or a permission, not a
 * bug, so the error is of kind IO (MEMORY for ENOMEM) and the message says which.
 */
const SYSTEM_ERRORS: Readonly<Record<string, readonly [ErrorCode, string]>> = {
  ENOSPC: ['IO', 'no space left on the device'],
  EDQUOT: ['IO', 'disk quota exceeded'],
  EFBIG: ['IO', 'file too large for this file system'],
  EROFS: ['IO', 'read-only file system'],
  EACCES: ['IO', 'permission denied'],
  EPERM: ['IO', 'operation not permitted'],
  EIO: ['IO', 'input/output error (a failing disk or a lost network mount)'],
  EMFILE: ['IO', 'too many open files in this process'],
  ENFILE: ['IO', 'too many open files on this system'],
  ENAMETOOLONG: ['IO', 'file name too long'],
  ENOENT: ['IO', 'no such file or folder'],
  ENOTDIR: ['IO', 'a part of the path is not a folder'],
  EISDIR: ['IO', 'is a folder'],
  EEXIST: ['IO', 'already exists'],
  EXDEV: ['IO', 'cannot move between file systems'],
  ENOMEM: ['MEMORY', 'out of memory'],
};

/** A SoraError for a Node system error whose cause is the user's system (see SYSTEM_ERRORS), else undefined. */
export function systemError(error: unknown): SoraError | undefined {
  const known = SYSTEM_ERRORS[errnoCode(error) ?? ''];
  if (known === undefined) return undefined;
  const { path, syscall } = error as { path?: unknown; syscall?: unknown };
  const where = typeof path === 'string' ? `${displayPath(path)}: ` : '';
  const during = typeof syscall === 'string' ? ` (${syscall})` : '';
  return new SoraError(known[0], `${where}${known[1]}${during}`, { cause: error });
}
