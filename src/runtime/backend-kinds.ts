/**
 * The names of the local backends and of ONNX Runtime's execution providers, apart from the backends themselves so
 * that `--help` can list them without loading a runtime.
 */
export const BACKEND_KINDS = ['onnx', 'coreml'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

/** Not a value of onnx-worker.ts: importing that module outside a worker would start its message loop. */
export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'coreml'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];
