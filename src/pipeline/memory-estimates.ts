/**
 * What CI-DL assumes of a block's load and run before it has measured them (src/pipeline/ci-dl.ts), and the refusal
 * of a budget that those numbers already show too small, before any model work. A load is estimated from the
 * block's weight bytes (manifest); a run from its tensors: the bytes of its inputs, and what the pipeline knows of a
 * component's tensors at the job's size (RunGeometry: the largest tensor its blocks hand on, and the attention scores,
 * which grow with the square of the tokens).
 */
import { SoraError } from '../errors.js';
import type { Component } from '../model/contract.js';
import type { Model, ModelBlock } from '../model/manifest.js';
import type { BlockSource } from '../runtime/backend.js';
import type { LatentShape } from './latent.js';
import { budgetReserve, formatBytes, type MemoryBudget } from './memory-budget.js';
import { SPATIAL_CHUNK_FRAMES } from './vae-decoder.js';

const MiB = 2 ** 20;

/**
 * A load not yet measured may grow RSS by its weights and by what ORT stages beside them: the external data file is
 * read in chunks of up to ~20 MiB while the tensor being prepacked exists twice. Measured (after the backend's
 * warm-up): +22 MiB for a 162 MiB block, +26 MiB for a 48 MiB one, +0.5–2.7 MiB for the tiny model's blocks.
 */
const LOAD_STAGING_BYTES = 32 * MiB;
const LOAD_PREPACK_SHARE = 0.125;
const LOAD_FLOOR = 4 * MiB;

/**
 * A run not yet measured may grow RSS by this much per byte of its largest tensors, plus a floor, plus the attention
 * scores the pipeline computes (RunGeometry). Measured with the mmap threshold set: a paper-width STDiT block 13.5–14×
 * its inputs (24 MiB at 64×64 up to 472 MiB at 256×256, 51 frames), part1 2.1× the tokens it makes, VAE parts
 * 4–8.4× (the tiny model's at 256×256), T5 layers under the floor. Blocks whose memory grows faster than that with
 * the input size, other than through the attention counted, can exceed it (the README says so). 24, not the 14×
 * measured there: on another machine (AMD EPYC, 2 vCPU) a first paper-width STDiT run at 128×128 grew RSS by
 * ~130 MiB against 72 MiB estimated at 16×, and `--memory-budget 450M` ended 37 MiB over its budget; at 24× it is
 * refused before crossing, and loads still overlap runs under the budgets ci-dl.test.ts sets.
 */
const WORKING_SET_PER_BYTE = 24;
const WORKING_SET_FLOOR = 24 * MiB;

/**
 * Room asked of the budget, per byte of weights, for blocks to be held with ORT's activation arenas: the weights,
 * an arena of about 3× them per resident block, and as much again for the working set of a run and slack.
 */
const AMPLE_ROOM_PER_WEIGHT_BYTE = 8;

/** Whether `weights` fit under the budget with that room to spare, beside `inUse` and twice the reserve. */
export function budgetHoldsAmply(budget: number, inUse: number, weights: number): boolean {
  return roomBeside(budget, inUse, AMPLE_ROOM_PER_WEIGHT_BYTE * weights);
}

/** Whether `room` fits under the budget beside `inUse`, with twice the reserve to spare. */
function roomBeside(budget: number, inUse: number, room: number): boolean {
  return inUse + room + 2 * budgetReserve(budget) <= budget;
}

/**
 * Room per byte of a component's weights for all its blocks to stay loaded without arenas: the weights, and as much
 * again for a run's working set and a load's staging.
 */
const WHOLE_COMPONENT_ROOM_PER_WEIGHT_BYTE = 2;

/**
 * Whether the budget holds all of one component's blocks loaded at once, beside `inUse`. When it does not, its
 * blocks stream under CI-DL, and their weights are mapped from the model's files instead of copied and prepacked: a
 * load then costs the block running beside it almost no CPU and needs no second copy of the weights while it lasts
 * (issue 17 goal 3: 1.50× → 1.04× the overlap bound). Runs on unpacked weights are slower (3 % at 128², 9–17 % at
 * 256²), which blocks that stay loaded would pay for nothing; and they sum in another order, so frames then differ
 * from a run without a budget by at most one level in a few pixels (ci-dl.test.ts bounds it).
 */
export function budgetHoldsComponent(budget: number, inUse: number, model: Model, component: Component): boolean {
  const weights = distinctWeightBytes(model.blocks.filter((block) => block.component === component));
  return roomBeside(budget, inUse, WHOLE_COMPONENT_ROOM_PER_WEIGHT_BYTE * weights);
}

/** Weight bytes of every block of the model, all components. */
export function modelWeightBytes(model: Model): number {
  return distinctWeightBytes(model.blocks);
}

/** Weight bytes of `blocks`, those naming one graph (a block pair's ST and TDTM) once: they share a session. */
export function distinctWeightBytes(blocks: readonly Pick<ModelBlock, 'graph' | 'weightBytes'>[]): number {
  const byGraph = new Map(blocks.map((block) => [block.graph.path, block.weightBytes]));
  return [...byGraph.values()].reduce((sum, bytes) => sum + bytes, 0);
}

/** What loading a block of `weightBytes` may add to RSS before it (or a twin) has been measured. */
export function loadEstimate(weightBytes: number): number {
  return weightBytes + Math.min(weightBytes, LOAD_STAGING_BYTES) + LOAD_PREPACK_SHARE * weightBytes + LOAD_FLOOR;
}

/** What a run with inputs of `inputBytes` may add to RSS before its block (or a twin) has been measured. */
export function runEstimate(inputBytes: number, geometry?: RunGeometry): number {
  const tensors = Math.max(inputBytes, geometry?.activationBytes ?? 0);
  const perByte = geometry?.workingSetPerByte ?? WORKING_SET_PER_BYTE;
  return WORKING_SET_FLOOR + perByte * tensors + (geometry?.attentionBytes ?? 0);
}

/** A component's tensors at a job's size, known before any run. */
export interface RunGeometry {
  /** The largest tensor its blocks hand on: a first run is estimated from it when it exceeds the run's inputs. */
  readonly activationBytes: number;
  /** Attention scores a run holds, which grow with the square of the tokens: added to a first run's estimate. */
  readonly attentionBytes: number;
  /** Working set per byte of those tensors for this kind of network (see WORKING_SET_PER_BYTE). */
  readonly workingSetPerByte: number;
}

const FLOAT32 = Float32Array.BYTES_PER_ELEMENT;
/** Classifier-free guidance runs the STDiT on a batch of two. */
const CFG_BATCH = 2;
/**
 * The VAE's convolutions hold less per byte of input than a transformer block: 4–7.4× measured on the tiny model's
 * parts at 256×256 (the shapes model's small ones sit under the floor).
 */
const VAE_WORKING_SET_PER_BYTE = 8;
/** A T5 layer: 4.2× its inputs measured (the shapes and tiny models, whose inputs are mostly the attention bias). */
const T5_WORKING_SET_PER_BYTE = 8;

/** What is known of `component`'s tensors at the latent size `latent` before any run. */
export function runGeometry(model: Model, latent: LatentShape, component: Component): RunGeometry {
  if (component === 'stdit') return stditGeometry(model, latent);
  if (component === 'vae') return vaeGeometry(latent);
  // T5's attention bias is an input of its layers, so their inputs already hold the scores' size.
  return { activationBytes: 0, attentionBytes: 0, workingSetPerByte: T5_WORKING_SET_PER_BYTE };
}

/**
 * STDiT3 on 2×2 patches: the token sequence [2, T·N, hidden] (part1 makes it from a latent a hundredth its size), and
 * per block the spatial scores [2·T, heads, N, N] and the temporal ones [2·N, heads, T, T], N patches per frame.
 */
function stditGeometry(model: Model, latent: LatentShape): RunGeometry {
  const { hidden_size: hidden, num_heads: heads } = model.architecture.stdit;
  const perFrame = Math.ceil(latent.height / 2) * Math.ceil(latent.width / 2);
  const frames = latent.frames;
  const spatial = CFG_BATCH * frames * heads * perFrame * perFrame;
  const temporal = CFG_BATCH * perFrame * heads * frames * frames;
  return {
    activationBytes: CFG_BATCH * frames * perFrame * hidden * FLOAT32,
    attentionBytes: (spatial + temporal) * FLOAT32,
    workingSetPerByte: WORKING_SET_PER_BYTE,
  };
}

/** The 2-D decoder's middle block: one head over the h·w latent pixels of each frame of a chunk. */
function vaeGeometry(latent: LatentShape): RunGeometry {
  const pixels = latent.height * latent.width;
  return {
    activationBytes: 0,
    attentionBytes: SPATIAL_CHUNK_FRAMES * pixels * pixels * FLOAT32,
    workingSetPerByte: VAE_WORKING_SET_PER_BYTE,
  };
}

/** The blocks of one component and, where known, its tensors at the job's size. */
export interface ComponentBlocks {
  readonly label: string;
  readonly blocks: readonly BlockSource[];
  readonly geometry?: RunGeometry;
}

/**
 * Refuses a budget below what the numbers known before any model work already demand: the memory in use now, plus
 * for some component its largest block's load, or that block's weights and the estimate of its first run (which
 * CI-DL would ask for at that run, whatever else it unloads). The message names the block that needs the most.
 */
export function refuseBudgetBeforeWork(budget: MemoryBudget, inUse: number, components: readonly ComponentBlocks[]): void {
  const needs = components.flatMap(({ label, blocks, geometry }) => {
    const largest = blocks.reduce<BlockSource | undefined>((max, b) => (max && max.weightBytes >= b.weightBytes ? max : b), undefined);
    if (largest === undefined) return [];
    const weights = largest.weightBytes;
    const load = loadEstimate(weights) - weights;
    const run = geometry === undefined ? 0 : runEstimate(0, geometry);
    const what = run > load ? `working set of a first ${label} run (estimated for this size)` : 'to load them';
    return [{ block: largest.name, weights, extra: Math.max(load, run), what }];
  });
  const worst = needs.reduce<(typeof needs)[number] | undefined>((max, n) => (max && max.weights + max.extra >= n.weights + n.extra ? max : n), undefined);
  const reserve = budgetReserve(budget.bytes);
  const limit = budget.bytes - reserve;
  if (worst === undefined || inUse + worst.weights + worst.extra <= limit) return;
  const total = inUse + worst.weights + worst.extra;
  throw new SoraError(
    'MEMORY',
    `memory budget ${formatBytes(budget.bytes)} (${budget.source}) is below one block plus the working set: ` +
      `${formatBytes(inUse)} in use + ${formatBytes(worst.weights)} of weights for ${worst.block} + ${formatBytes(worst.extra)} ` +
      `${worst.what} = ${formatBytes(total)}, over ${formatBytes(limit)} (the budget less ${formatBytes(reserve)} kept in reserve)`,
  );
}
