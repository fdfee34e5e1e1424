/**
 * The most a model's distinct weights may come to for ONNX Runtime's optimised-graph cache to be on without
 * `--graph-cache` (graph-cache-choice.ts says why); no imports, so that `--help` can show it.
 */
export const GRAPH_CACHE_AUTO_BYTES = 2 ** 30;
