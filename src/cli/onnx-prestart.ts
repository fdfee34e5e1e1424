/**
 * `generate` starts ONNX Runtime's worker threads before it imports its own work (zod, the pipeline, the model code):
 * each loads onnxruntime-node on a thread of its own meanwhile, and the backend adopts them (start-up time, issue
 * 17). Only when the flags say the blocks will run here on ONNX Runtime, and never under `--memory-budget`: the
 * workers' memory (ONNX Runtime itself, tens of MiB) must be in use when the budget is checked before any work, not
 * come after it and cross a budget that was refused. With a preset's CI-DL (its default budget, most of the memory
 * available) garbage collection on demand is turned on first, as the backend would before starting its workers.
 * Flags that turn out invalid leave the workers idle.
 */
import { LOG_LEVELS } from '../log-levels.js';
import { PRESETS } from '../policies/presets.js';
import { enableGarbageCollection } from '../runtime/garbage-collection.js';
import { prestartWorkers } from '../runtime/onnx-worker-start.js';

export function prestartOnnxWorkers(options: Record<string, unknown>, globals: Record<string, unknown>): void {
  const local = (options.backend === undefined || options.backend === 'onnx') && options.connect === undefined && options.device === undefined;
  const preset = Object.hasOwn(PRESETS, String(options.preset)) ? PRESETS[options.preset as keyof typeof PRESETS] : undefined;
  if (!local || options.memoryBudget !== undefined) return;
  if (preset?.cidl === true) enableGarbageCollection();
  // As OnnxBackend decides it from its logger: ORT's own warnings only at debug and trace.
  const level = LOG_LEVELS.indexOf(globals.logLevel as (typeof LOG_LEVELS)[number]);
  const verbose = level >= 0 && level <= LOG_LEVELS.indexOf('debug');
  prestartWorkers({ ortLogLevel: verbose ? 'warning' : 'fatal' });
}
