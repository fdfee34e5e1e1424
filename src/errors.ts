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
  DOWNLOAD: 10, // a download failed: hub unreachable, access refused, file truncated or not matching its checksum
  INTERRUPTED: 130, // Ctrl-C
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
