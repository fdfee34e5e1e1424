/**
 * Whether a job's ONNX Runtime sessions go through the optimised-graph cache (runtime/onnx-graph-cache.ts) when the
 * flags leave it open. Each entry is a copy of its block's weights, so the cache is on by itself only for a model
 * whose weights that copy keeps small: there it pays every process. On models/shapes, each block loaded from its
 * optimised graph in ~27 ms instead of ~64 ms, and a default `generate` took 2.42 s instead of 2.70 s, and 2.29
 * instead of 2.48 s in another sitting (medians of alternating runs, issue 17). Open-Sora 1.2's converted weights
 * (~23 GB) stay outside it unless asked for (`--graph-cache`).
 */
import type { Model } from '../model/manifest.js';
import { cacheWritable, defaultGraphCacheDir } from '../runtime/onnx-graph-cache.js';
import { GRAPH_CACHE_AUTO_BYTES } from './graph-cache-default.js';
import { modelWeightBytes } from './memory-estimates.js';

/**
 * `--graph-cache` (true) and `--no-graph-cache` (false) decide; without either, a model within GRAPH_CACHE_AUTO_BYTES
 * uses the cache when its folder can be written (a read-only home would otherwise warn at every block's load).
 */
export function usesGraphCache(flag: boolean | undefined, model: Model): boolean {
  if (flag !== undefined) return flag;
  return modelWeightBytes(model) <= GRAPH_CACHE_AUTO_BYTES && cacheWritable(defaultGraphCacheDir());
}
