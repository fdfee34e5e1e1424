/**
 * `models verify`'s check of values: every block of a model folder held to the contract for the manifest's
 * architecture (src/model/io-contract.ts), first as the graph declares itself (dtypes, ranks, the model's sizes, and
 * the manifest's declared shapes against the graph's), then by running it once on a small request of real shapes
 * and checking what comes back. Names alone let a swapped ST/TDTM pair, a graph of another width or an integer
 * where a float belongs pass, and generate then die deep inside ONNX Runtime.
 *
 * The tokenizer is checked with the model: its vocabulary against the T5 embedding (the probe embeds its largest
 * id) and against `architecture.t5.vocab_size` when the manifest records one, pad and EOS ids inside it.
 */
import { displayPath } from '../display-path.js';
import { SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import { VAE_SPATIAL_PARTS, VAE_TEMPORAL_PARTS } from '../model/contract.js';
import {
  contractTensors,
  SPATIAL_FACTOR,
  type ContractDim,
  type ContractTensor,
  type ProbeSize,
} from '../model/io-contract.js';
import { blockSource, type Model, type ModelBlock } from '../model/manifest.js';
import type { TensorSpec } from '../model/manifest-schema.js';
import { hostOutputs, type BlockHandle, type NamedTensors, type Tensor } from '../runtime/backend.js';
import type { GraphIO, GraphValue, OnnxBackend } from '../runtime/onnx-backend.js';
import { fromNumbers } from '../runtime/tensor.js';
import { PromptTokenizer } from '../text/tokenizer.js';
import { blockDiagonalMask, MASKED, queryRowsPerSample, type BlockVariant } from './attention-mask.js';

/** Frames of the probe: two latent frames, so a TDTM block merges one pair and an ST block does not. */
const PROBE_FRAMES = 2;
const PROBE_CAPTION_TOKENS = 2;
const PROBE_TIMESTEP = 500;

type Side = 'inputs' | 'outputs';

export async function checkModelAgainstContract(
  model: Model,
  backend: OnnxBackend,
  logger: Logger,
  onBlock?: (block: ModelBlock) => void,
): Promise<void> {
  const tokenizer = await PromptTokenizer.forModel(model, logger);
  checkTokenIds(model, tokenizer.vocabularySize);
  const size = probeSize(model);
  const chains = new Map<string, Tensor>();
  for (const block of pipelineOrder(model.blocks)) {
    onBlock?.(block);
    const probe = new BlockProbe(model, block, size);
    const handle = await backend.load(blockSource(block));
    try {
      probe.checkDeclared(backend.graphIO(handle));
      const inputs = probe.inputs(chains.get(block.kind), model.tokenizer.padId);
      // The probe runs on the host: no output is kept where the blocks run.
      const outputs = await backend.run(handle, inputs).then(hostOutputs).catch(async (error: unknown) => {
        throw (await probe.swappedVariant(backend, handle, inputs)) ??
          probe.problem(`does not run on the contract's inputs for this architecture (${describe(inputs)}): ${firstLine(error)}`, error);
      });
      probe.checkOutputs(outputs, inputs);
      if (block.kind === 'vae-temporal' || block.kind === 'vae-spatial') chains.set(block.kind, outputs.output!);
      if (block.kind === 't5-embed') await checkEmbeddingRows(backend, handle, probe, tokenizer.vocabularySize, model);
    } finally {
      await backend.unload(handle);
    }
  }
}

/** The tokenizer's largest id through the embedding: a table with fewer rows fails in ONNX Runtime's Gather. */
async function checkEmbeddingRows(
  backend: OnnxBackend,
  handle: BlockHandle,
  probe: BlockProbe,
  vocabulary: number,
  model: Model,
): Promise<void> {
  await backend.run(handle, probe.inputs(undefined, vocabulary - 1)).catch((error: unknown) => {
    throw new SoraError(
      'MODEL',
      `${displayPath(model.manifestPath)}: tokenizer: its vocabulary has ${vocabulary} ids, more than the rows of the ` +
        `T5 embedding (t5embed-tokens cannot embed id ${vocabulary - 1}: ${firstLine(error)})`,
      { cause: error },
    );
  });
}

function checkTokenIds(model: Model, vocabulary: number): void {
  const where = displayPath(model.manifestPath);
  const declared = model.architecture.t5.vocab_size;
  if (typeof declared === 'number' && vocabulary > declared) {
    throw new SoraError(
      'MODEL',
      `${where}: tokenizer: its vocabulary has ${vocabulary} ids, more than the ${declared} rows of the T5 embedding (architecture.t5.vocab_size)`,
    );
  }
  for (const field of ['padId', 'eosId'] as const) {
    const id = model.tokenizer[field];
    if (id >= vocabulary) {
      throw new SoraError('MODEL', `${where}: tokenizer.${field}: ${id} is not an id of the tokenizer (its vocabulary has ${vocabulary})`);
    }
  }
}

/** The smallest resolution the manifest offers (the probe checks shapes, not pictures), two latent frames. */
function probeSize(model: Model): ProbeSize {
  const sides = model.defaults.resolutions
    .map((text) => text.split('x').map(Number) as [number, number])
    .sort((a, b) => a[0] * a[1] - b[0] * b[1])[0]!;
  return {
    tokens: model.tokenizer.maxLength,
    captionTokens: Math.min(PROBE_CAPTION_TOKENS, model.tokenizer.maxLength),
    frames: PROBE_FRAMES,
    width: Math.ceil(sides[0] / SPATIAL_FACTOR),
    height: Math.ceil(sides[1] / SPATIAL_FACTOR),
    decodedFrames: 1,
  };
}

/** The manifest's blocks with each VAE chain in pipeline order (every other block is probed on its own). */
function pipelineOrder(blocks: readonly ModelBlock[]): ModelBlock[] {
  const vae = (kind: string, parts: readonly string[]) =>
    parts.map((name) => blocks.find((block) => block.kind === kind && block.name === name)!);
  return [
    ...blocks.filter((block) => block.component !== 'vae'),
    ...vae('vae-temporal', VAE_TEMPORAL_PARTS),
    ...vae('vae-spatial', VAE_SPATIAL_PARTS),
  ];
}

class BlockProbe {
  readonly #model: Model;
  readonly #block: ModelBlock;
  readonly #size: ProbeSize;
  readonly #contract: Record<Side, readonly ContractTensor[]>;

  constructor(model: Model, block: ModelBlock, size: ProbeSize) {
    this.#model = model;
    this.#block = block;
    this.#size = size;
    this.#contract = contractTensors(block.kind, block.index, model.architecture, size);
  }

  problem(detail: string, cause?: unknown): SoraError {
    const { field, name } = this.#block;
    return new SoraError('MODEL', `${displayPath(this.#model.manifestPath)}: ${field} (${name}): ${detail}`, { cause });
  }

  /** What the graph declares, against the manifest's declared specs and the contract's dtypes and model sizes. */
  checkDeclared(graph: GraphIO): void {
    for (const side of ['inputs', 'outputs'] as const) {
      for (const value of graph[side]) {
        const what = `${side === 'inputs' ? 'input' : 'output'} "${value.name}"`;
        const declared = this.#block[side].find((spec) => spec.name === value.name);
        if (declared !== undefined && !sameDeclaration(declared, value)) {
          throw this.problem(`${what}: the manifest declares ${declared.dtype} ${shapeText(declared.shape)}, the graph ${value.type} ${shapeText(value.shape)}`);
        }
        const expected = this.#contract[side].find((tensor) => tensor.name === value.name);
        const mismatch = expected === undefined ? undefined : declaredMismatch(expected, value);
        if (mismatch !== undefined) throw this.problem(`${what}: ${mismatch}`);
      }
    }
  }

  /**
   * Inputs of the contract's shapes; a VAE block after the first of its chain takes what the one before returned.
   * `tokenId` is the first token of `input_ids` (then EOS, then padding).
   */
  inputs(previous: Tensor | undefined, tokenId: number): NamedTensors {
    const inputs: NamedTensors = {};
    for (const tensor of this.#contract.inputs) {
      if (tensor.dims === undefined) {
        if (previous === undefined) throw new SoraError('INTERNAL', `${this.#block.name}: no input from the block before`);
        inputs[tensor.name] = previous;
        continue;
      }
      const dims = tensor.dims.map((dim) => dim.size);
      inputs[tensor.name] = this.#value(tensor, dims, tokenId);
    }
    return inputs;
  }

  /**
   * An ST block that fails on its inputs but runs on a TDTM block's (or the reverse) holds the other kind's graph:
   * said plainly, since that is the likely mistake of a hand-made folder and ONNX Runtime's message does not say so.
   */
  async swappedVariant(backend: OnnxBackend, handle: BlockHandle, inputs: NamedTensors): Promise<SoraError | undefined> {
    const { kind } = this.#block;
    if (kind !== 'stdit-st' && kind !== 'stdit-tdtm') return undefined;
    const other = kind === 'stdit-st' ? 'tdtm' : 'st';
    const runs = await backend.run(handle, { ...inputs, attn: this.#attentionMask(other) }).then(
      () => true,
      () => false,
    );
    if (!runs) return undefined;
    const [holds, belongs] = other === 'tdtm' ? ['TDTM', 'ST'] : ['ST', 'TDTM'];
    return this.problem(
      `holds a ${holds} graph where the ${belongs} graph belongs: it takes the attention mask of ${holds} blocks ` +
        `(${describe({ attn: this.#attentionMask(other) })}), not this block's (${describe({ attn: inputs.attn! })})`,
    );
  }

  checkOutputs(outputs: NamedTensors, inputs: NamedTensors): void {
    for (const expected of this.#contract.outputs) {
      const actual = outputs[expected.name];
      if (actual === undefined) throw this.problem(`returned no output "${expected.name}"`);
      const dims = expected.dims?.map((dim) => dim.size);
      if (actual.dtype !== expected.dtype || (dims !== undefined && !sameNumbers(dims, actual.dims))) {
        const wanted = `${expected.dtype} ${dims === undefined ? '' : shapeText(dims)}`.trim();
        throw this.problem(
          `output "${expected.name}" is ${actual.dtype} ${shapeText(actual.dims)} for inputs ${describe(inputs)}; ` +
            `the contract for this architecture gives ${wanted}`,
        );
      }
    }
  }

  #attentionMask(variant: BlockVariant): Tensor {
    const size = this.#size;
    const grid = { frames: size.frames, paddedHeight: size.height + (size.height % 2), paddedWidth: size.width + (size.width % 2) };
    return blockDiagonalMask(queryRowsPerSample(grid, variant), size.captionTokens);
  }

  /** Values a real request would hold where they matter (ids, masks, sizes), small varied numbers elsewhere. */
  #value(tensor: ContractTensor, dims: readonly number[], tokenId: number): Tensor {
    const count = dims.reduce((product, dim) => product * dim, 1);
    const size = this.#size;
    const pixels = { height: size.height * SPATIAL_FACTOR, width: size.width * SPATIAL_FACTOR };
    const valid = (i: number): boolean => i % size.tokens < size.captionTokens;
    switch (tensor.name) {
      case 'input_ids': {
        const { padId, eosId } = this.#model.tokenizer;
        return fromNumbers('int64', dims, Array.from({ length: count }, (_, i) => (i === 0 ? tokenId : i === 1 ? eosId : padId)));
      }
      case 'attention_mask':
        return fromNumbers('float32', dims, Array.from({ length: count }, (_, i) => (valid(i) ? 0 : MASKED)));
      case 'mask':
        return fromNumbers('float32', dims, Array.from({ length: count }, (_, i) => (valid(i) ? 1 : 0)));
      case 'attn':
        return this.#attentionMask(this.#block.kind === 'stdit-tdtm' ? 'tdtm' : 'st');
      case 'T':
        return fromNumbers('int64', dims, [size.frames]);
      case 'padH':
        return fromNumbers('int64', dims, [size.height % 2]);
      case 'padW':
        return fromNumbers('int64', dims, [size.width % 2]);
      case 'fps':
        return fromNumbers('float32', dims, [this.#model.defaults.fps]);
      case 'height':
      case 'width':
        return fromNumbers('float32', dims, [pixels[tensor.name]]);
      case 't':
        if (dims.length === 1) return fromNumbers('float32', dims, new Array<number>(count).fill(PROBE_TIMESTEP));
    }
    return fromNumbers(tensor.dtype, dims, Array.from({ length: count }, (_, i) => 0.5 * Math.sin(i)));
  }
}

function sameDeclaration(declared: TensorSpec, graph: GraphValue): boolean {
  if (declared.dtype !== graph.type || declared.shape.length !== graph.shape.length) return false;
  return declared.shape.every((dim, i) => (typeof dim === 'number' ? dim === graph.shape[i] : typeof graph.shape[i] === 'string'));
}

function declaredMismatch(expected: ContractTensor, graph: GraphValue): string | undefined {
  if (graph.type !== expected.dtype) return `the graph declares ${graph.type}, the contract ${expected.dtype}`;
  if (expected.dims === undefined) return undefined;
  if (graph.shape.length !== expected.dims.length) {
    return `the graph declares ${graph.shape.length} dimensions ${shapeText(graph.shape)}, the contract ${expected.dims.length} ${contractShape(expected.dims)}`;
  }
  const wrong = expected.dims.findIndex((dim, i) => dim.fixedByModel && typeof graph.shape[i] === 'number' && graph.shape[i] !== dim.size);
  if (wrong < 0) return undefined;
  return `the graph declares ${shapeText(graph.shape)}, the contract for this architecture ${contractShape(expected.dims)} (dimension ${wrong})`;
}

function contractShape(dims: readonly ContractDim[]): string {
  return `[${dims.map((dim) => (dim.fixedByModel ? String(dim.size) : '·')).join(', ')}]`;
}

function shapeText(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

function describe(inputs: NamedTensors): string {
  return Object.entries(inputs)
    .map(([name, tensor]) => `${name} ${shapeText(tensor.dims)}`)
    .join(', ');
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}
