import type { ProtocolErrorCode } from '../runtime/runner-frames.js';

/** A request the runner cannot carry out: answered with an error reply of this code; the runner goes on. */
export class RunnerFailure extends Error {
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RunnerFailure';
  }
}
