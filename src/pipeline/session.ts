import { isDeepStrictEqual } from 'node:util';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Component } from '../model/contract.js';
import type { Backend } from '../runtime/backend.js';
import { CoreMLBackend } from '../runtime/coreml-backend.js';
import { createBackend, type BackendChoice } from '../runtime/create-backend.js';
import type { MemoryMeter } from '../runtime/memory-meter.js';
import type { RemoteBackend } from '../runtime/remote-backend.js';
import type { RemoteChoice } from '../runtime/runner-address.js';
import { localMemoryMeter } from './memory-budget.js';
import type { BlockProvider } from './block-provider.js';
import { blockSource, type Model } from '../model/manifest.js';
import { processMemory } from '../native/memory.js';
import type { CidlSettings } from './ci-dl.js';
import { enableGarbageCollection } from '../runtime/garbage-collection.js';
import { usesGraphCache } from './graph-cache-choice.js';
import { budgetHoldsAmply, modelWeightBytes } from './memory-estimates.js';
import {
  blockProvider,
  generate,
  jobBackend,
  type ComponentProviders,
  type GenerateJob,
  type GenerateResult,
  type GenerateSettings,
} from './generate.js';

/**
 * Whether the budget is so far above what the whole model can take that every block stays resident with its
 * activation arena: then the arena stays on (without it, every run allocates and faults in its activations again).
 * The scheduler still measures the arenas (they show in the working set) and sheds blocks if they do not fit.
 */
export function budgetHoldsArenas(cidl: CidlSettings, model: Model, inUse: number = processMemory().rss): boolean {
  return budgetHoldsAmply(cidl.budget.bytes, inUse, modelWeightBytes(model));
}

/** The backend the flags ask for, set up for these CI-DL settings (none: every block resident while its component runs). */
export function createJobBackend(
  choice: Omit<BackendChoice, 'logger' | 'onnx'>,
  cidl: CidlSettings | undefined,
  model: Model,
  logger: Logger,
): Backend {
  if (cidl !== undefined) enableGarbageCollection(); // before the backend starts its workers
  // Under a budget that binds, a resident ONNX block must hold only its weights, not also an arena of its largest
  // activations; under an ample one the arenas are kept, as without CI-DL. (Whether its weights are mapped is decided
  // per component: generate.ts, blockProvider.)
  const arena = cidl === undefined || budgetHoldsArenas(cidl, model);
  const graphCache = choice.backend === 'onnx' && usesGraphCache(choice.graphCache, model);
  return createBackend({ ...choice, graphCache, logger, onnx: arena ? {} : { activationArena: false } });
}

/** Where a job's blocks run: a backend in this process, or a runner (remote-backend.ts). */
export type JobBackendChoice =
  | (Omit<BackendChoice, 'logger' | 'onnx'>)
  | { readonly backend: 'remote'; readonly remote: Omit<RemoteChoice, 'logger' | 'dropIdle'> };

export interface JobMemory {
  /** CI-DL is asked for (a preset or a budget): a remote runner then unloads what it kept from earlier jobs. */
  readonly requested: boolean;
  /** The settings, with the budget resolved against the memory of the process that will run the blocks. */
  settings(meter: MemoryMeter): CidlSettings | undefined;
}

/**
 * The job's backend and its CI-DL settings, before any work. A remote runner is connected first: its memory is what
 * a budget caps, and it must serve the same model (name and architecture) as the folder given here.
 */
export async function openJobBackend(
  choice: JobBackendChoice,
  memory: JobMemory,
  model: Model,
  logger: Logger,
): Promise<{ readonly backend: Backend; readonly cidl: CidlSettings | undefined }> {
  if (choice.backend !== 'remote') {
    const cidl = memory.settings(localMemoryMeter);
    return { backend: await createCheckedJobBackend(choice, cidl, model, logger), cidl };
  }
  // Loaded only for a runner: its protocol's modules are a start-up cost a local job need not pay (issue 17).
  const { connectRemoteBackend } = await import('../runtime/runner-address.js');
  const backend = await connectRemoteBackend({ ...choice.remote, logger });
  try {
    checkRunnerModel(backend, model);
    if (memory.requested) await backend.dropIdleBlocks();
    return { backend, cidl: memory.settings(backend.memory) };
  } catch (error) {
    await backend.close();
    throw error;
  }
}

function checkRunnerModel(backend: RemoteBackend, model: Model): void {
  const served = backend.runner.model;
  const where = backend.memory.where;
  if (served === null) throw new SoraError('MODEL', `${where} serves no model; start it with --model`);
  const same = served.name === model.name && isDeepStrictEqual(served.architecture, JSON.parse(JSON.stringify(model.architecture)));
  if (!same) {
    throw new SoraError('MODEL', `${where} serves model ${served.name}, not ${model.name} (${displayPath(model.dir)}): both sides need the same model`);
  }
}

/**
 * createJobBackend, then the checks a backend can make on the whole model before any work: CoreML refuses a folder
 * whose packages need a newer macOS than this Mac's, naming the package and both versions.
 */
export async function createCheckedJobBackend(
  choice: Omit<BackendChoice, 'logger' | 'onnx'>,
  cidl: CidlSettings | undefined,
  model: Model,
  logger: Logger,
): Promise<Backend> {
  const backend = createJobBackend(choice, cidl, model, logger);
  if (!(backend instanceof CoreMLBackend)) return backend;
  try {
    await backend.checkBlocks(model.blocks.map(blockSource));
    return backend;
  } catch (error) {
    await backend.close();
    throw error;
  }
}

/** What stays the same for every job of a session. */
export type SessionSetup = Pick<GenerateJob, 'model' | 'backend' | 'logger' | 'cidl' | 'timeline'>;
/** What each job brings: its settings, output, policies, progress and signal. */
export type SessionJob = Omit<GenerateJob, keyof SessionSetup | 'providers'>;

/**
 * One loaded model, many jobs: each component's block provider is made on first use and kept until close(), so a
 * batch loads every block once instead of once per prompt (the complaint users have about tools that reload per
 * prompt). With CI-DL each scheduler keeps its resident blocks and its memory measurements from one job to the
 * next. Jobs run one at a time; the caller owns the backend and closes it after the session.
 */
export class GenerateSession implements ComponentProviders {
  readonly #setup: SessionSetup;
  readonly #providers = new Map<Component, BlockProvider>();
  readonly #backend: Backend;
  #signal: AbortSignal | undefined;

  constructor(setup: SessionSetup) {
    this.#setup = setup;
    const session = this;
    this.#backend = jobBackend(setup.backend, {
      get signal() {
        return session.#signal;
      },
      timeline: setup.timeline,
    });
  }

  /**
   * Runs one job on the loaded blocks. A failed job may have left a provider halfway (a load in flight, a step
   * half done), so the providers are closed and the next job loads afresh.
   */
  async run(job: SessionJob): Promise<GenerateResult> {
    this.#signal = job.signal;
    try {
      return await generate({ ...this.#setup, ...job, providers: this });
    } catch (error) {
      await this.close().catch((closeError: unknown) =>
        this.#setup.logger.warn({ error: errorMessage(closeError) }, 'unloading blocks after a failed job failed'),
      );
      throw error;
    } finally {
      this.#signal = undefined;
    }
  }

  provider(component: Component, settings: GenerateSettings): BlockProvider {
    let provider = this.#providers.get(component);
    if (provider === undefined) {
      provider = blockProvider(this.#backend, this.#setup, component, settings);
      this.#providers.set(component, provider);
    }
    return provider;
  }

  /** Unloads every block; a later job loads them again. */
  async close(): Promise<void> {
    const providers = [...this.#providers.values()];
    this.#providers.clear();
    const closed = await Promise.allSettled(providers.map((provider) => provider.close()));
    const failed = closed.find((result) => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }
}
