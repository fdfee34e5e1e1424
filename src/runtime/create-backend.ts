import type { Logger } from 'pino';
import type { ComputeUnits } from '../native/coreml.js';
import type { Backend } from './backend.js';
import { createCoreMLBackend } from './coreml-backend.js';
import type { BackendKind, ExecutionProvider } from './backend-kinds.js';
import { defaultGraphCacheDir } from './onnx-graph-cache.js';
import { OnnxBackend, type OnnxBackendOptions } from './onnx-backend.js';

export { BACKEND_KINDS, EXECUTION_PROVIDERS, type BackendKind } from './backend-kinds.js';

export interface BackendChoice {
  readonly backend: BackendKind;
  /** ONNX Runtime execution provider (`--execution-provider`); ignored by the CoreML backend. */
  readonly executionProvider?: ExecutionProvider;
  /** CoreML compute units (`--compute-units`); ignored by ONNX Runtime. */
  readonly computeUnits?: ComputeUnits;
  /**
   * ONNX Runtime: keep optimised graphs in the tool's cache folder (onnx-graph-cache.ts). Given as the flags say
   * (`--graph-cache`, `--no-graph-cache`, neither: undefined); a job's backend gets it decided
   * (pipeline/graph-cache-choice.ts), and here only true turns it on.
   */
  readonly graphCache?: boolean;
  readonly logger?: Logger;
  /** Extra ONNX Runtime options (e.g. a memory-budgeted scheduler turns the activation arena off). */
  readonly onnx?: Omit<OnnxBackendOptions, 'executionProvider' | 'logger'>;
}

/**
 * The one place that turns the CLI's backend flags into a Backend. The CoreML backend throws a one-line
 * DEPENDENCY error outside macOS, so `--backend coreml` on Linux fails before any model work.
 */
export function createBackend(choice: BackendChoice): Backend {
  if (choice.backend === 'coreml') {
    return createCoreMLBackend(choice.computeUnits === undefined ? {} : { computeUnits: choice.computeUnits });
  }
  return new OnnxBackend({
    ...choice.onnx,
    ...(choice.graphCache === true ? { graphCacheDir: defaultGraphCacheDir() } : {}),
    ...(choice.executionProvider === undefined ? {} : { executionProvider: choice.executionProvider }),
    ...(choice.logger === undefined ? {} : { logger: choice.logger }),
  });
}
