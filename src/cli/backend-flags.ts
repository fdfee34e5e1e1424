/**
 * The backend flags of generate, batch and bench (shared-options.ts defines them), checked: where blocks run.
 * `--backend onnx|coreml` in this process,
 * `--backend remote` on a runner: `--connect HOST:PORT|unix:PATH` (`serve` elsewhere), or `--device <udid>|auto`
 * (the iPhone app over USB). `--connect` or `--device` alone implies remote.
 */
import * as z from 'zod';
import { SoraError } from '../errors.js';
import { COMPUTE_UNITS } from '../native/coreml.js';
import type { JobBackendChoice } from '../pipeline/session.js';
import { BACKEND_KINDS, EXECUTION_PROVIDERS } from '../runtime/backend-kinds.js';
import { DEFAULT_RUNNER_PORT, parseConnect, type RunnerTarget } from '../runtime/runner-target.js';
import { JOB_BACKEND_KINDS, TOKEN_ENV } from './shared-options.js';

const connectFlag = z
  .string()
  .transform((text, context) => {
    const target = parseConnect(text);
    if (typeof target === 'string') {
      context.addIssue({ code: 'custom', message: target });
      return z.NEVER;
    }
    return target;
  });

export const BACKEND_FLAGS = {
  backend: z.enum(JOB_BACKEND_KINDS, `must be one of: ${JOB_BACKEND_KINDS.join(', ')}`).optional(),
  executionProvider: z.enum(EXECUTION_PROVIDERS, `must be one of: ${EXECUTION_PROVIDERS.join(', ')}`),
  graphCache: z.boolean().optional(),
  computeUnits: z.enum(COMPUTE_UNITS, `must be one of: ${COMPUTE_UNITS.join(', ')}`).optional(),
  connect: connectFlag.optional(),
  device: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be a device UDID or auto').optional(),
  token: z.string().min(1, 'must not be empty').optional(),
};

export const LOCAL_BACKEND_FLAGS = {
  backend: z.enum(BACKEND_KINDS, `must be one of: ${BACKEND_KINDS.join(', ')}`),
  executionProvider: BACKEND_FLAGS.executionProvider,
  graphCache: BACKEND_FLAGS.graphCache,
  computeUnits: BACKEND_FLAGS.computeUnits,
};

const LocalBackendFlagsSchema = z.object(LOCAL_BACKEND_FLAGS);

/** What addLocalBackendOptions' flags ask for. */
export function localBackendChoice(flags: z.infer<typeof LocalBackendFlagsSchema>): Exclude<JobBackendChoice, { backend: 'remote' }> {
  return { backend: flags.backend, executionProvider: flags.executionProvider, computeUnits: flags.computeUnits, graphCache: flags.graphCache };
}

const BackendFlagsSchema = z.object(BACKEND_FLAGS);
export type BackendFlags = z.infer<typeof BackendFlagsSchema>;

/** What the flags ask for, checked against each other. */
export function jobBackendChoice(flags: BackendFlags, env: NodeJS.ProcessEnv = process.env): JobBackendChoice {
  const target = runnerTarget(flags);
  const backend = flags.backend ?? (target === undefined ? 'onnx' : 'remote');
  if (backend !== 'remote') {
    if (target !== undefined) throw new SoraError('USAGE', `--${flags.connect ? 'connect' : 'device'}: only applies with --backend remote`);
    return { backend, executionProvider: flags.executionProvider, computeUnits: flags.computeUnits, graphCache: flags.graphCache };
  }
  if (target === undefined) throw new SoraError('USAGE', '--backend remote: needs --connect HOST:PORT|unix:PATH or --device <udid>|auto');
  if (flags.graphCache === true) throw new SoraError('USAGE', '--graph-cache: applies to ONNX Runtime in this process, not to a runner (start serve with it)');
  const token = flags.token ?? (env[TOKEN_ENV] || undefined);
  return {
    backend: 'remote',
    remote: { target, ...(token !== undefined && { token }), ...(flags.computeUnits !== undefined && { computeUnits: flags.computeUnits }) },
  };
}

function runnerTarget(flags: BackendFlags): RunnerTarget | undefined {
  if (flags.connect !== undefined && flags.device !== undefined) throw new SoraError('USAGE', '--connect and --device: choose one');
  if (flags.connect !== undefined) return flags.connect;
  if (flags.device !== undefined) return { kind: 'usb', device: flags.device, port: DEFAULT_RUNNER_PORT };
  return undefined;
}
