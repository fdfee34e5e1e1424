/**
 * The client end of a runner connection: requests out, replies matched to them by id. When the connection ends
 * (the runner killed, the cable pulled), every request waiting fails at once with one line that says which request
 * was under way, the buffers held for a partial reply are dropped, and later requests fail the same way.
 */
import type { Duplex } from 'node:stream';
import type * as z from 'zod';
import { errorMessage, SoraError, type ErrorCode } from '../errors.js';
import type { Tensor } from './backend.js';
import { encodeFrame, FrameReader, HELLO_LIMITS, type Frame, type FrameHeader, type FrameLimits } from './runner-frames.js';
import { ErrorReplySchema, ReplySchemas, type Reply, type RequestType, type RunnerMemory } from './runner-messages.js';

export interface Answer<T extends RequestType> {
  readonly reply: Reply<T>;
  readonly tensors: readonly Tensor[];
}

interface Waiting {
  readonly type: RequestType;
  readonly what: string;
  resolve(frame: Frame): void;
  reject(error: SoraError): void;
}

/** Error codes of the runner that say something about what the user asked for, not about the runner. */
const CODE_ERRORS: Readonly<Record<string, ErrorCode>> = {
  unauthorized: 'USAGE',
  'no-such-block': 'MODEL',
  'load-failed': 'MODEL',
  version: 'DEPENDENCY',
};

export class RunnerConnection {
  readonly #stream: Duplex;
  #reader: FrameReader;
  readonly #waiting = new Map<number, Waiting>();
  #nextId = 0;
  #failure: SoraError | undefined;
  /** Tensor bytes sent and received. */
  sentBytes = 0;
  receivedBytes = 0;
  /** Called with the memory every reply reports. */
  onMemory: ((memory: RunnerMemory) => void) | undefined;

  /** `where` names the runner in messages: "runner at 127.0.0.1:7315". */
  constructor(
    stream: Duplex,
    readonly where: string,
    limits: FrameLimits,
  ) {
    this.#stream = stream;
    this.#reader = new FrameReader(limits);
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    // A runner that dies while this side writes shows as a reset rather than an end: the same event for the user.
    stream.on('error', (error: NodeJS.ErrnoException) =>
      this.#fail(error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'closed the connection' : `the connection failed (${errorMessage(error)})`),
    );
    stream.on('close', () => this.#fail('closed the connection'));
    stream.on('end', () => this.#fail('closed the connection'));
  }

  setLimits(limits: FrameLimits): void {
    this.#reader.setLimits(limits);
  }

  /** Requests waiting for a reply. */
  get pending(): number {
    return this.#waiting.size;
  }

  /** Bytes held for a reply not complete yet. */
  get buffered(): number {
    return this.#reader.buffered;
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Sends a request and waits for its reply; `what` describes it for messages ("run of stdit3_ST_2"). */
  request<T extends RequestType>(type: T, fields: FrameHeader, tensors: readonly Tensor[] = [], what: string = type): Promise<Answer<T>> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const frame = new Promise<Frame>((resolve, reject) => this.#waiting.set(id, { type, what, resolve, reject }));
    for (const t of tensors) this.sentBytes += t.data.byteLength;
    for (const chunk of encodeFrame({ type, id, ...fields }, tensors)) this.#stream.write(chunk);
    return frame.then((reply) => this.#check(type, reply, what));
  }

  /** Ends the connection from this side; requests still waiting fail. */
  end(): void {
    this.#fail('the connection was closed by this side');
    this.#stream.end();
    this.#stream.destroy();
  }

  #check<T extends RequestType>(type: T, frame: Frame, what: string): Answer<T> {
    if (frame.header.type === 'error') {
      const error = ErrorReplySchema.safeParse(frame.header);
      const { code, message } = error.success ? error.data : { code: 'bad-frame', message: 'an error reply that cannot be read' };
      throw new SoraError(CODE_ERRORS[code] ?? 'BACKEND', `${this.where}: ${what}: ${message} (${code})`);
    }
    const parsed = (ReplySchemas[type] as unknown as z.ZodType<Reply<T>>).safeParse(frame.header);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new SoraError('BACKEND', `${this.where}: ${what}: the reply does not follow the protocol (${issue.path.join('.')}: ${issue.message})`);
    }
    const memory = (parsed.data as { memory?: RunnerMemory }).memory;
    if (memory !== undefined) this.onMemory?.(memory);
    for (const t of frame.tensors) this.receivedBytes += t.data.byteLength;
    return { reply: parsed.data, tensors: frame.tensors };
  }

  #onData(chunk: Buffer): void {
    for (const event of this.#reader.push(chunk)) {
      if ('problem' in event) {
        const { id, code, message } = event.problem;
        const waiting = id === null ? undefined : this.#waiting.get(id);
        if (waiting === undefined || event.problem.fatal) {
          this.#fail(`sent a reply that cannot be read (${code}: ${message})`);
          this.#stream.destroy();
          return;
        }
        this.#waiting.delete(id!);
        waiting.reject(new SoraError('BACKEND', `${this.where}: ${waiting.what}: a reply that cannot be read (${code}: ${message})`));
        continue;
      }
      this.#deliver(event.frame);
    }
  }

  #deliver(frame: Frame): void {
    const id = frame.header.id;
    const waiting = typeof id === 'number' ? this.#waiting.get(id) : undefined;
    if (waiting === undefined) {
      // An error without an id is the runner giving up on the connection (a frame it could not read).
      if (frame.header.type === 'error') {
        const message = typeof frame.header.message === 'string' ? frame.header.message : 'an error';
        return this.#fail(`ended the connection: ${message}`);
      }
      return;
    }
    this.#waiting.delete(id as number);
    waiting.resolve(frame);
  }

  #fail(reason: string): void {
    if (this.#failure !== undefined) return;
    const under = [...this.#waiting.values()].map((waiting) => waiting.what);
    const during = under.length === 0 ? '' : ` during ${under.join(', ')}`;
    this.#failure = new SoraError('BACKEND', `${this.where} ${reason}${during}`);
    this.#reader = new FrameReader(HELLO_LIMITS); // drops what a partial reply held
    for (const waiting of this.#waiting.values()) waiting.reject(this.#failure);
    this.#waiting.clear();
  }
}
