/**
 * `serve`: the block runner over the local backend (docs/runner-protocol.md), for `--backend remote --connect` on
 * another machine or process, and a keep-loaded server: blocks stay loaded from one client's job to the next.
 */
import { Duplex } from 'node:stream';
import type { Command } from 'commander';
import * as z from 'zod';
import { displayPath } from '../../display-path.js';
import { SoraError } from '../../errors.js';
import { defaultModelDir } from '../../model/default-model.js';
import { loadModel } from '../../model/manifest.js';
import { COMPUTE_UNITS } from '../../native/coreml.js';
import { localMemoryMeter, memoryBudgetFlag } from '../../pipeline/memory-budget.js';
import { createCheckedJobBackend } from '../../pipeline/session.js';
import { BACKEND_KINDS, EXECUTION_PROVIDERS } from '../../runtime/create-backend.js';
import { DEFAULT_RUNNER_PORT, describeTarget, parseConnect, type RunnerTarget } from '../../runtime/runner-address.js';
import { DEFAULT_LIMITS, RunnerServer } from '../../serve/runner-server.js';
import { TOKEN_ENV } from '../shared-options.js';
import { cliContext, type CliContext } from '../context.js';
import { parseFlags } from '../flags.js';

const FlagsSchema = z.object({
  listen: z.string().optional(),
  socket: z.string().min(1, 'must name a path').optional(),
  stdio: z.boolean().optional(),
  model: z.string().min(1, 'must name a folder').optional(),
  token: z.string().min(1, 'must not be empty').optional(),
  backend: z.enum(BACKEND_KINDS, `must be one of: ${BACKEND_KINDS.join(', ')}`),
  executionProvider: z.enum(EXECUTION_PROVIDERS, `must be one of: ${EXECUTION_PROVIDERS.join(', ')}`),
  graphCache: z.boolean().optional(),
  computeUnits: z.enum(COMPUTE_UNITS, `must be one of: ${COMPUTE_UNITS.join(', ')}`).optional(),
  maxFrame: memoryBudgetFlag
    .refine((spec) => spec.kind === 'absolute', 'must be a size such as 512M')
    .transform((spec) => (spec.kind === 'absolute' ? spec.bytes : 0))
    .refine((bytes) => bytes >= 1 << 20 && bytes <= 2 ** 32, 'must be from 1M to 4G')
    .optional(),
});
type Flags = z.infer<typeof FlagsSchema>;

type Where = { readonly kind: 'stdio' } | RunnerTarget;

/** Loopback addresses: 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function whereToServe(flags: Flags, token: string | undefined): Where {
  const chosen = [flags.listen !== undefined, flags.socket !== undefined, flags.stdio === true].filter(Boolean).length;
  if (chosen > 1) throw new SoraError('USAGE', '--listen, --socket and --stdio: choose one');
  if (flags.stdio === true) return { kind: 'stdio' };
  if (flags.socket !== undefined) return { kind: 'unix', path: flags.socket };
  const target = parseConnect(flags.listen ?? `127.0.0.1:${DEFAULT_RUNNER_PORT}`, { portZero: true });
  if (typeof target === 'string' || target.kind !== 'tcp') {
    throw new SoraError('USAGE', `--listen: ${typeof target === 'string' ? target : 'must be HOST:PORT'}, got "${flags.listen}"`);
  }
  if (!isLoopback(target.host) && token === undefined) {
    throw new SoraError('USAGE', `--listen ${flags.listen}: not a loopback address; serving other machines needs --token (or $${TOKEN_ENV})`);
  }
  return target;
}

/** What `serve` runs (commands/ defines its options). */
export async function serveAction(options: Record<string, unknown>, self: Command): Promise<void> {
  await serve(options, cliContext(self));
}

async function serve(options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(FlagsSchema, options);
  const token = flags.token ?? (process.env[TOKEN_ENV] || undefined);
  const where = whereToServe(flags, token);
  const model = await loadModel(flags.model ?? defaultModelDir());
  const { logger } = context;
  const choice = { backend: flags.backend, executionProvider: flags.executionProvider, computeUnits: flags.computeUnits, graphCache: flags.graphCache };
  const backend = await createCheckedJobBackend(choice, undefined, model, logger);
  const limits = { ...DEFAULT_LIMITS, ...(flags.maxFrame !== undefined && { maxFrameBytes: flags.maxFrame }) };
  const server = new RunnerServer({ backend, model, meter: localMemoryMeter, logger, limits, ...(token !== undefined && { token }) });

  const stopped = stopOnSignal(server);
  let address: string;
  try {
    address = await start(server, where);
  } catch (error) {
    stopped.dispose();
    await server.shutdown();
    throw error;
  }
  const tokenNote = token === undefined ? '' : ', token required';
  process.stderr.write(`serving ${model.name} (${displayPath(model.dir)}, ${backend.kind} ${backend.device}) on ${address}${tokenNote}; one client at a time, Ctrl-C stops\n`);
  if (where.kind === 'stdio') {
    await server.serveStream(Duplex.from({ readable: process.stdin, writable: process.stdout }), 'stdio');
    stopped.dispose();
    await server.shutdown();
    return;
  }
  await stopped.done;
  throw new SoraError('INTERRUPTED', 'serve: stopped; requests under way were finished first');
}

async function start(server: RunnerServer, where: Where): Promise<string> {
  switch (where.kind) {
    case 'stdio':
      return 'stdio';
    case 'unix':
      await server.listenUnix(where.path);
      return `unix:${where.path}`;
    case 'tcp': {
      const bound = await server.listenTcp(where.host, where.port);
      return describeTarget({ kind: 'tcp', host: bound.address, port: bound.port }).replace(/^runner at /, '');
    }
    case 'usb':
      throw new SoraError('INTERNAL', 'serve cannot listen on a USB device');
  }
}

/** Ctrl-C (or SIGTERM) drains: the running requests finish, then the runner stops; a second one exits at once. */
function stopOnSignal(server: RunnerServer): { readonly done: Promise<void>; dispose(): void } {
  let stopping = false;
  let finished: () => void = () => {};
  const done = new Promise<void>((resolve) => (finished = resolve));
  const onSignal = (): void => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write('stopping: finishing the requests under way (Ctrl-C again to quit at once)\n');
    void server.shutdown().finally(finished);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    done,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
