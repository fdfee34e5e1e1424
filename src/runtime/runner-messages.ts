/**
 * The messages of the block-runner protocol (docs/runner-protocol.md) as zod schemas: requests as the runner
 * (`serve`) checks them, replies as the client (RemoteBackend) checks them. Each reply has the type of its request,
 * or `error`. Unknown fields are ignored, so that a later version can add some.
 */
import * as z from 'zod';
import { COMPUTE_UNITS } from '../native/coreml.js';
import { ERROR_CODES } from './runner-frames.js';

export const PROTOCOL_VERSION = 1;
export { DEFAULT_RUNNER_PORT } from './runner-port.js';

const id = z.int().min(0).max(0x7fffffff);
const handle = z.int().min(1).max(0x7fffffff);
const name = z.string().min(1).max(256);

/** A run input or output: tensor i of the frame's payload, or a resident tensor of the runner. */
export const ValueSchema = z.union([z.object({ tensor: z.int().min(0) }), z.object({ handle })]);
export type WireValue = z.infer<typeof ValueSchema>;

/** The runner's memory: in use now, the highest since its previous reply that said so, and what it can still get. */
export const MemorySchema = z.object({
  inUse: z.number().nonnegative(),
  peak: z.number().nonnegative(),
  available: z.number().nonnegative(),
});
export type RunnerMemory = z.infer<typeof MemorySchema>;

const LimitsSchema = z.object({
  maxFrameBytes: z.int().positive(),
  maxHeaderBytes: z.int().positive(),
  maxHandles: z.int().positive(),
  maxInFlight: z.int().positive(),
});
export type RunnerLimits = z.infer<typeof LimitsSchema>;

export const RequestSchemas = {
  hello: z.object({
    type: z.literal('hello'),
    id,
    versions: z.array(z.int().positive()).min(1).max(16),
    client: z.string().max(256).optional(),
    token: z.string().max(1024).optional(),
  }),
  load: z.object({ type: z.literal('load'), id, name, computeUnits: z.enum(COMPUTE_UNITS).optional() }),
  run: z.object({
    type: z.literal('run'),
    id,
    block: handle,
    inputs: z.record(name, ValueSchema),
    keep: z.array(name).default([]),
    consume: z.array(name).default([]),
  }),
  put: z.object({ type: z.literal('put'), id }),
  fetch: z.object({ type: z.literal('fetch'), id, handles: z.array(handle).min(1) }),
  release: z.object({ type: z.literal('release'), id, handles: z.array(handle).min(1) }),
  unload: z.union([
    z.object({ type: z.literal('unload'), id, block: handle, keep: z.boolean().default(false) }),
    z.object({ type: z.literal('unload'), id, idle: z.literal(true) }),
  ]),
  stats: z.object({ type: z.literal('stats'), id }),
  close: z.object({ type: z.literal('close'), id }),
} as const;

export type RequestType = keyof typeof RequestSchemas;
export const REQUEST_TYPES = Object.keys(RequestSchemas) as RequestType[];
export type Request<T extends RequestType> = z.infer<(typeof RequestSchemas)[T]>;

const tensorShape = { dtype: z.enum(['float32', 'float16', 'int64', 'int32']), dims: z.array(z.int().min(0)) };
/** A resident tensor as a reply names it. */
export const HandleSchema = z.object({ handle, ...tensorShape });

export const ReplySchemas = {
  hello: z.object({
    type: z.literal('hello'),
    id,
    version: z.int().positive(),
    runner: z.string(),
    device: z.object({ name: z.string(), model: z.string(), os: z.string(), osVersion: z.string(), arch: z.string() }),
    backend: z.string(),
    /** The model folder the runner serves blocks from, when it has one. */
    model: z.object({ name: z.string(), architecture: z.record(z.string(), z.unknown()) }).nullable(),
    memory: MemorySchema,
    limits: LimitsSchema,
  }),
  load: z.object({
    type: z.literal('load'),
    id,
    block: handle,
    inputs: z.array(z.string()),
    outputs: z.array(z.string()),
    ms: z.number().nonnegative(),
    /** Already loaded before this request (kept from an earlier client's job). */
    cached: z.boolean(),
    memory: MemorySchema,
  }),
  run: z.object({
    type: z.literal('run'),
    id,
    outputs: z.record(z.string(), z.union([HandleSchema, z.object({ tensor: z.int().min(0) })])),
    ms: z.number(),
    memory: MemorySchema,
  }),
  put: z.object({ type: z.literal('put'), id, handles: z.array(handle), memory: MemorySchema }),
  fetch: z.object({ type: z.literal('fetch'), id, memory: MemorySchema }),
  release: z.object({ type: z.literal('release'), id, memory: MemorySchema }),
  unload: z.object({ type: z.literal('unload'), id, memory: MemorySchema }),
  stats: z.object({
    type: z.literal('stats'),
    id,
    /** This client's resident tensors (not `tensors`: that field lists a frame's payload). */
    held: z.object({ count: z.int().min(0), bytes: z.number().min(0) }),
    /** Every client's, gone ones included until the runner has freed what they held. */
    heldByAll: z.object({ count: z.int().min(0), bytes: z.number().min(0) }),
    blocks: z.object({
      loaded: z.array(z.object({ block: handle, name: z.string() })),
      idle: z.array(z.string()),
    }),
    memory: MemorySchema,
  }),
  close: z.object({ type: z.literal('close'), id }),
} as const;

export type Reply<T extends RequestType> = z.infer<(typeof ReplySchemas)[T]>;

export const ErrorReplySchema = z.object({
  type: z.literal('error'),
  id: id.nullable(),
  code: z.enum(ERROR_CODES).or(z.string()),
  message: z.string(),
});
export type ErrorReply = z.infer<typeof ErrorReplySchema>;
