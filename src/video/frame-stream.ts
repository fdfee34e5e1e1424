/**
 * Frames handed to a writer while they are still being decoded: the writer (ffmpeg, or the PNG files) starts with the
 * decoder instead of after it, so ffmpeg's start-up (~0.14 s here, most of a short clip's encoding) overlaps the
 * decode. An async iterable with one consumer; push() never waits, since the decoder keeps every frame anyway.
 */
export class FrameStream implements AsyncIterable<Uint8Array> {
  readonly #queued: Uint8Array[] = [];
  #ended = false;
  #failure: { readonly error: unknown } | undefined;
  #wake: (() => void) | undefined;

  push(frames: readonly Uint8Array[]): void {
    if (this.#ended) throw new Error('FrameStream: push after end');
    this.#queued.push(...frames);
    this.#notify();
  }

  /** No more frames: the writer finishes what it has. */
  end(): void {
    this.#ended = true;
    this.#notify();
  }

  /** The frames will not all come: the writer stops with this error. */
  fail(error: unknown): void {
    this.#failure ??= { error };
    this.end();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure.error;
      const frame = this.#queued.shift();
      if (frame !== undefined) {
        yield frame;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
