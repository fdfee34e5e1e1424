/**
 * One client of the runner (`serve`): reads its frames, carries out its requests on the local backend and answers
 * each (docs/runner-protocol.md). The client's resident tensors and block claims are its own: when it goes, however it
 * goes, its tensors are released and its blocks given back (kept loaded for the next client).
 *
 * Requests run concurrently (a load while a run goes on is what CI-DL on the host relies on) and are answered as
 * they finish; at most `maxInFlight` at a time, beyond which the session stops reading the stream, so that a client
 * cannot make the runner hold more than that many frames.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type * as z from 'zod';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logging.js';
import { isResident, tensorByteLength, type Backend, type ResidentTensor, type Tensor, type TensorValue } from '../runtime/backend.js';
import type { MemoryMeter } from '../runtime/memory-meter.js';
import { encodeFrame, FrameReader, type Frame, type FrameHeader, type FrameProblem } from '../runtime/runner-frames.js';
import {
  PROTOCOL_VERSION,
  REQUEST_TYPES,
  RequestSchemas,
  type Reply,
  type Request,
  type RequestType,
  type RunnerLimits,
  type RunnerMemory,
} from '../runtime/runner-messages.js';
import type { LoadedBlock, LoadedBlocks } from './loaded-blocks.js';
import { RunnerFailure } from './runner-failure.js';

/** What every session of one runner shares. */
export interface RunnerContext {
  readonly backend: Backend;
  readonly blocks: LoadedBlocks;
  readonly meter: MemoryMeter;
  readonly limits: RunnerLimits;
  /** Required of every client when set. */
  readonly token: string | undefined;
  /** The hello reply's description of the runner. */
  readonly identity: Pick<Reply<'hello'>, 'runner' | 'device' | 'backend' | 'model'>;
  readonly logger: Logger;
  /** Whether this session may be the one client now: false when another is being served. */
  admit(session: RunnerSession): Promise<boolean>;
  leave(session: RunnerSession): void;
  /** Resident tensors every client holds, gone ones included until their cleanup is done. */
  heldByAll(): { readonly count: number; readonly bytes: number };
  readonly shuttingDown: boolean;
}

type Handled = { readonly header: Record<string, unknown>; readonly tensors?: readonly Tensor[]; readonly end?: boolean };

export class RunnerSession {
  readonly #context: RunnerContext;
  readonly #stream: Duplex;
  readonly #reader = new FrameReader();
  readonly #tensors = new Map<number, ResidentTensor>();
  readonly #blocks = new Map<number, LoadedBlock>();
  readonly #inFlight = new Set<Promise<void>>();
  #nextHandle = 1;
  #ready = false;
  /** Settles when the hello under way (if any) is answered. */
  #hello: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly #ended: Promise<void>;

  constructor(context: RunnerContext, stream: Duplex, readonly label: string) {
    this.#context = context;
    this.#stream = stream;
    let ended: () => void = () => {};
    this.#ended = new Promise((resolve) => (ended = resolve));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('error', (error) => context.logger.debug({ client: label, error: errorMessage(error) }, 'client connection failed'));
    stream.once('close', () => void this.#finish().then(ended));
    stream.once('end', () => void this.#finish().then(ended));
  }

  /** The client has gone or is going: nothing more is read or answered. */
  get closing(): boolean {
    return this.#closed;
  }

  /** Resolves once the client has gone and everything it held is freed. */
  get ended(): Promise<void> {
    return this.#ended;
  }

  /** Lets the requests under way finish, then ends the connection (Ctrl-C on the runner). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
    this.#stream.end();
    await this.#finish();
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    for (const event of this.#reader.push(chunk)) {
      if ('problem' in event) this.#problem(event.problem);
      else this.#track(this.#answer(event.frame));
    }
  }

  #problem(problem: FrameProblem): void {
    this.#context.logger.debug({ client: this.label, ...problem }, 'bad frame');
    this.#sendError(problem.id, problem.code, problem.message);
    if (problem.fatal) this.#stream.end();
  }

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    if (this.#inFlight.size >= this.#context.limits.maxInFlight) this.#stream.pause();
    void work.finally(() => {
      this.#inFlight.delete(work);
      if (!this.#closed && this.#inFlight.size < this.#context.limits.maxInFlight) this.#stream.resume();
    });
  }

  async #answer(frame: Frame): Promise<void> {
    const id = frame.header.id as number | null;
    try {
      if (id === null) throw new RunnerFailure('bad-request', 'a request needs an integer id');
      // Nothing is answered before hello is: a client may send its first requests right behind it.
      if (frame.header.type !== 'hello') await this.#hello;
      const { header, tensors = [], end = false } = await this.#handle(frame);
      this.#send({ ...header, id }, tensors);
      if (end) this.#stream.end();
    } catch (error) {
      const failure = error instanceof RunnerFailure ? error : new RunnerFailure('run-failed', errorMessage(error));
      this.#sendError(id, failure.code, failure.message.replace(/\s*\n\s*/g, ' '));
      if (failure.code === 'unauthorized' || failure.code === 'busy' || failure.code === 'version') this.#stream.end();
    }
  }

  async #handle(frame: Frame): Promise<Handled> {
    const type = frame.header.type as string;
    if (!(REQUEST_TYPES as readonly string[]).includes(type)) throw new RunnerFailure('unknown-message', `unknown message type "${type}"`);
    if (this.#context.shuttingDown) throw new RunnerFailure('shutting-down', 'the runner is shutting down');
    if (type !== 'hello' && !this.#ready) throw new RunnerFailure('not-ready', `${type} before hello`);
    if (type === 'hello' && this.#ready) throw new RunnerFailure('bad-request', 'hello was already said');
    const request = parse(type as RequestType, frame.header);
    switch (request.type) {
      case 'hello': {
        const answered = this.#greet(request);
        this.#hello = answered.catch(() => undefined);
        return answered;
      }
      case 'load':
        return this.#load(request);
      case 'run':
        return this.#run(request, frame.tensors);
      case 'put':
        return this.#put(frame.tensors);
      case 'fetch':
        return this.#fetch(request);
      case 'release':
        return this.#release(request);
      case 'unload':
        return this.#unload(request);
      case 'stats':
        return this.#stats();
      case 'close':
        return { header: { type: 'close' }, end: true };
    }
  }

  async #greet(request: Request<'hello'>): Promise<Handled> {
    if (!request.versions.includes(PROTOCOL_VERSION)) {
      throw new RunnerFailure('version', `the runner speaks version ${PROTOCOL_VERSION}; the client offered ${request.versions.join(', ')}`);
    }
    if (this.#context.token !== undefined && !sameSecret(request.token, this.#context.token)) {
      throw new RunnerFailure('unauthorized', request.token === undefined ? 'the runner requires a token' : 'wrong token');
    }
    if (!(await this.#context.admit(this))) throw new RunnerFailure('busy', 'the runner is serving another client');
    this.#ready = true;
    this.#reader.setLimits(this.#context.limits);
    this.#context.logger.info({ client: this.label, program: request.client }, 'client connected');
    const header = { type: 'hello', version: PROTOCOL_VERSION, ...this.#context.identity, limits: this.#context.limits };
    return { header };
  }

  async #load(request: Request<'load'>): Promise<Handled> {
    const claim = await this.#context.blocks.claim(request.name, request.computeUnits);
    const handle = this.#nextHandle++;
    this.#blocks.set(handle, claim.block);
    const { inputs, outputs } = claim.block;
    return { header: { type: 'load', block: handle, inputs, outputs, ms: claim.ms, cached: claim.cached } };
  }

  async #run(request: Request<'run'>, payload: readonly Tensor[]): Promise<Handled> {
    const block = this.#block(request.block);
    const inputs: Record<string, TensorValue> = {};
    for (const [name, value] of Object.entries(request.inputs)) {
      inputs[name] = 'handle' in value ? this.#tensor(value.handle) : payloadTensor(payload, value.tensor);
    }
    const consumed = request.consume.map((name) => {
      const input = inputs[name];
      if (input === undefined || !isResident(input)) throw new RunnerFailure('bad-request', `consume: ${name} is not an input given by handle`);
      return (request.inputs[name] as { handle: number }).handle;
    });
    this.#reserveHandles(request.keep.length);
    const started = performance.now();
    try {
      // Payload tensors are views of this frame's buffer, which nothing else uses: handed over, not copied.
      const outputs = await this.#context.backend.run(block.handle, inputs, { keep: request.keep, consume: request.consume, transferInputs: true });
      const tensors: Tensor[] = [];
      const described: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(outputs)) {
        if (isResident(value)) {
          described[name] = { handle: this.#hold(value), dtype: value.dtype, dims: value.dims };
        } else {
          described[name] = { tensor: tensors.length };
          tensors.push(value);
        }
      }
      return { header: { type: 'run', outputs: described, ms: performance.now() - started }, tensors };
    } finally {
      // The backend has released what the run consumed, whether it succeeded or not.
      for (const handle of consumed) this.#tensors.delete(handle);
    }
  }

  async #put(payload: readonly Tensor[]): Promise<Handled> {
    if (payload.length === 0) throw new RunnerFailure('bad-request', 'put needs at least one tensor');
    this.#reserveHandles(payload.length);
    // A lone tensor owns the frame's buffer and can be handed over; several share it, so each is copied.
    const transfer = payload.length === 1 && payload[0]!.data.byteLength === payload[0]!.data.buffer.byteLength;
    const handles: number[] = [];
    for (const t of payload) handles.push(this.#hold(await this.#context.backend.upload(t, { transfer })));
    return { header: { type: 'put', handles } };
  }

  async #fetch(request: Request<'fetch'>): Promise<Handled> {
    const resident = request.handles.map((handle) => this.#tensor(handle));
    const tensors = await Promise.all(resident.map((t) => this.#context.backend.fetch(t)));
    return { header: { type: 'fetch' }, tensors };
  }

  async #release(request: Request<'release'>): Promise<Handled> {
    const resident = request.handles.map((handle) => this.#tensor(handle)); // all known, or nothing is released
    for (const handle of request.handles) this.#tensors.delete(handle);
    await this.#context.backend.release(resident);
    return { header: { type: 'release' } };
  }

  async #unload(request: Request<'unload'>): Promise<Handled> {
    if ('idle' in request) {
      await this.#context.blocks.dropIdle();
    } else {
      const block = this.#block(request.block);
      this.#blocks.delete(request.block);
      await this.#context.blocks.giveBack(block, request.keep);
    }
    return { header: { type: 'unload' } };
  }

  /** This client's resident tensors and their bytes. */
  held(): { readonly count: number; readonly bytes: number } {
    const bytes = [...this.#tensors.values()].reduce((sum, t) => sum + tensorByteLength(t), 0);
    return { count: this.#tensors.size, bytes };
  }

  async #stats(): Promise<Handled> {
    const loaded = [...this.#blocks].map(([block, { name }]) => ({ block, name }));
    const idle = await this.#context.blocks.idleNames();
    const header = { type: 'stats', held: this.held(), heldByAll: this.#context.heldByAll(), blocks: { loaded, idle } };
    return { header };
  }

  #block(handle: number): LoadedBlock {
    const block = this.#blocks.get(handle);
    if (block === undefined) throw new RunnerFailure('no-such-handle', `no loaded block ${handle}`);
    return block;
  }

  #tensor(handle: number): ResidentTensor {
    const t = this.#tensors.get(handle);
    if (t === undefined) throw new RunnerFailure('no-such-handle', `no tensor ${handle}`);
    return t;
  }

  #reserveHandles(count: number): void {
    const { maxHandles } = this.#context.limits;
    if (this.#tensors.size + count > maxHandles) {
      throw new RunnerFailure('limit', `the client would hold more than ${maxHandles} tensors; release some first`);
    }
  }

  #hold(t: ResidentTensor): number {
    const handle = this.#nextHandle++;
    this.#tensors.set(handle, t);
    return handle;
  }

  #memory(): RunnerMemory {
    const { meter } = this.#context;
    return { inUse: meter.inUse(), peak: meter.takeWindowPeak(), available: meter.available() };
  }

  #send(header: FrameHeader, tensors: readonly Tensor[] = []): void {
    if (this.#closed || this.#stream.writableEnded) return;
    const withMemory = header.type === 'close' ? header : { ...header, memory: this.#memory() };
    for (const chunk of encodeFrame(withMemory, tensors)) this.#stream.write(chunk);
  }

  #sendError(id: number | null, code: string, message: string): void {
    if (this.#closed || this.#stream.writableEnded) return;
    for (const chunk of encodeFrame({ type: 'error', id, code, message })) this.#stream.write(chunk);
  }

  /** Once: waits for the requests under way, then frees the client's tensors and gives its blocks back. */
  #finishing: Promise<void> | undefined;
  #finish(): Promise<void> {
    this.#finishing ??= (async () => {
      this.#closed = true;
      await Promise.allSettled([...this.#inFlight]);
      const tensors = [...this.#tensors.values()];
      this.#tensors.clear();
      await this.#context.backend.release(tensors).catch(() => undefined);
      for (const block of this.#blocks.values()) await this.#context.blocks.giveBack(block, true).catch(() => undefined);
      this.#blocks.clear();
      if (this.#ready) this.#context.logger.info({ client: this.label, released: tensors.length }, 'client gone');
      this.#context.leave(this);
    })();
    return this.#finishing;
  }
}

function parse(type: RequestType, header: FrameHeader): Request<RequestType> {
  const parsed = (RequestSchemas[type] as z.ZodType<Request<RequestType>>).safeParse(header);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new RunnerFailure('bad-request', `${type}: ${issue.path.join('.') || 'message'}: ${issue.message}`);
}

function payloadTensor(payload: readonly Tensor[], index: number): Tensor {
  const t = payload[index];
  if (t === undefined) throw new RunnerFailure('bad-tensor', `the frame has no tensor ${index}`);
  return t;
}

/** Compared in constant time, so that the answer's timing says nothing about the token. */
function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
