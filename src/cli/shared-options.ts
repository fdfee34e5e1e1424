/**
 * The commander options several commands share (what `--help` shows of them), free of zod and of the runtimes so
 * that `--help` loads nothing else; the flags modules (backend-flags.ts, policy-flags.ts, memory-flags.ts) check
 * their values when a command runs.
 */
import type { Command } from 'commander';
import { displayPath } from '../display-path.js';
import { MODEL_ENV, SHIPPED_MODELS } from '../model/default-model.js';
import { COMPUTE_UNITS } from '../native/coreml.js';
import { DEFAULT_BUDGET_FRACTION } from '../pipeline/budget-default.js';
import { GRAPH_CACHE_AUTO_BYTES } from '../pipeline/graph-cache-default.js';
import { TIMESTEP_TRANSFORMS } from '../pipeline/timesteps.js';
import { DEFAULT_LPL_PATIENCE, DEFAULT_LPL_TOLERANCE } from '../policies/lpl.js';
import { PRESET_NAMES } from '../policies/presets.js';
import { BACKEND_KINDS, EXECUTION_PROVIDERS } from '../runtime/backend-kinds.js';
import { DEFAULT_RUNNER_PORT } from '../runtime/runner-port.js';

/** Help text of --model, shared by every command that loads a model. */
export const MODEL_HELP = `model folder (default: $${MODEL_ENV} if set, else the shipped ${displayPath(SHIPPED_MODELS.shapes)})`;

const GRAPH_CACHE_HELP =
  "ONNX Runtime: keep each block's optimised graph in the cache folder and load it from there (faster loads; " +
  `each entry is a copy of its weights on disk; default: on for models of up to ${GRAPH_CACHE_AUTO_BYTES / 2 ** 30} GiB)`;

/** `--graph-cache` and `--no-graph-cache`; with neither, the value stays undefined: the model's size decides. */
export function addGraphCacheOptions(command: Command): Command {
  return command.option('--graph-cache', GRAPH_CACHE_HELP).option('--no-graph-cache', 'ONNX Runtime: never use the optimised-graph cache');
}

export const FFMPEG_HELP = 'ffmpeg to encode with (default: FFMPEG_PATH, then PATH, then the bundled one)';

export const QUEUE_HELP = 'redis://[:password@]host[:port][/name]: the job queue (name: default ondevice-sora)';

export const JOB_BACKEND_KINDS = [...BACKEND_KINDS, 'remote'] as const;

/** The runner's token when the flag is not given: a flag shows in `ps`, the environment does not. */
export const TOKEN_ENV = 'ONDEVICE_SORA_TOKEN';

export const LIMIT_FLAGS_HELP = {
  strictPrompt: 'fail instead of warning when the prompt has words the model does not know or more objects than it draws',
  allowAnySize: 'try a resolution or frame count the model does not declare (with a warning) instead of refusing it',
} as const;

/** The options of one generation, shared with `batch` (which applies them to every prompt). */
export function addJobOptions(command: Command): Command {
  command
    .option('--model <dir>', MODEL_HELP)
    .option('--steps <n>', "denoising steps (default: the model's)")
    .option('--cfg-scale <s>', "classifier-free guidance scale (default: the model's)")
    .option('--seed <n>', 'random seed; the same seed gives the same video (default: a random one, reported)')
    .option('--num-frames <n>', "frames, a multiple of 17 (default: the model's)")
    .option('--resolution <WxH>', "width x height in pixels, multiples of 16 (default: the model's)")
    .option('--fps <n>', "frame rate the model is conditioned on and the file plays at (default: the model's)")
    .option('--aes <score>', "aesthetic score appended to the prompt (default: the model's)")
    .option('--no-aes', 'do not append an aesthetic score')
    .option(
      '--timestep-transform <mode>',
      `${TIMESTEP_TRANSFORMS.join(' | ')}: Open-Sora's schedule, or the iOS app's (51-frame constant, rounding)`,
      'opensora',
    )
    .option('--strict-prompt', LIMIT_FLAGS_HELP.strictPrompt)
    .option('--allow-any-size', LIMIT_FLAGS_HELP.allowAnySize)
    .option('--overwrite', 'replace an output and sidecar this tool wrote before (never a folder holding anything else)')
    .option('--ffmpeg <path>', FFMPEG_HELP);
  return addMemoryOptions(addPolicyOptions(addBackendOptions(command)));
}

function addRuntimeOptions(command: Command): Command {
  return addGraphCacheOptions(command)
    .option('--execution-provider <ep>', `ONNX Runtime: ${EXECUTION_PROVIDERS.join(' | ')} (falls back to cpu)`, 'cpu')
    .option(
      '--compute-units <units>',
      `CoreML: ${COMPUTE_UNITS.join(' | ')} for every block (default: each block's from the manifest, else all)`,
    );
}

/**
 * Where blocks run: `--backend onnx|coreml` in this process, `--backend remote` on a runner: `--connect
 * HOST:PORT|unix:PATH` (`serve` elsewhere), or `--device <udid>|auto` (the iPhone app over USB).
 */
export function addBackendOptions(command: Command): Command {
  return addRuntimeOptions(
    command.option('--backend <name>', `${JOB_BACKEND_KINDS.join(' | ')}: ONNX Runtime, CoreML (macOS), or a runner (serve, the iPhone app) (default: onnx)`),
  )
    .option('--connect <address>', 'remote: the runner at HOST:PORT or unix:PATH (ondevice-sora serve)')
    .option('--device <udid>', `remote: the iPhone runner app over USB, by UDID, or auto (the only one attached); port ${DEFAULT_RUNNER_PORT}`)
    .option('--token <token>', `remote: the token the runner requires (default: $${TOKEN_ENV})`);
}

/** The queue worker's: its blocks run in its own process. */
export function addLocalBackendOptions(command: Command): Command {
  return addRuntimeOptions(command.option('--backend <name>', `${BACKEND_KINDS.join(' | ')}: ONNX Runtime, or CoreML (macOS)`, 'onnx'));
}

/** The speed-ups: `--preset`, `--lpl`, `--lpl-tolerance`, `--lpl-patience`, `--tdtm`, `--step-cache`, `--reuse-every`. */
export function addPolicyOptions(command: Command): Command {
  return command
    .option('--preset <name>', `${PRESET_NAMES.join(' | ')}: a set of speed-ups; the flags below override it`, 'baseline')
    .option('--lpl <n>', 'leap to the end at step N (N + 1 evaluations), auto (when drifts stop turning), or off')
    .option('--lpl-tolerance <x>', `--lpl auto: the least gain in drift similarity that counts (default ${DEFAULT_LPL_TOLERANCE})`)
    .option('--lpl-patience <n>', `--lpl auto: checks without gain before leaping (default ${DEFAULT_LPL_PATIENCE})`)
    .option('--tdtm <k>', 'merge frame pairs in the first K steps, or all; 0 for none')
    .option('--step-cache <x>', 'skip the blocks while the accumulated relative change of their input stays below X (TeaCache); 0 for off')
    .option('--reuse-every <n>', 'run the blocks every N-th step, reuse their residual between (FORA); 1 for every step');
}

/** The memory flags: `--memory-budget`, `--no-ci`, `--no-dl`, and unless left out `--trace`. */
export function addMemoryOptions(command: Command, { trace = true } = {}): Command {
  command
    .option(
      '--memory-budget <size>',
      'cap on peak memory (RSS), e.g. 3.3G or 800M, or -1G for 1G below what is available; turns CI-DL on ' +
        `(default with CI-DL: in use + ${DEFAULT_BUDGET_FRACTION * 100}% of available)`,
    )
    .option('--no-ci', 'CI-DL: do not load the next block while one runs')
    .option('--no-dl', 'CI-DL: keep no block resident between steps');
  if (!trace) return command;
  return command.option(
    '--trace',
    'record every block load, run and unload (Chrome trace format): generate puts it in the sidecar, batch in trace.json',
  );
}
