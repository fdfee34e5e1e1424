/**
 * The block contract's values, not only its names: for a model's architecture and one request size, the dtype and
 * shape of every input and output of every block (models/README.md, reference §A). `models verify` holds each graph
 * to it, statically (what the graph declares) and by running it once on inputs of these shapes, which is what tells
 * an ST graph from a TDTM graph: their names and declared shapes are the same, the attention mask they take is not.
 *
 * Sizes are of two kinds: the model's (T5 width, heads, STDiT hidden size, token count), which a graph may fix and
 * must then match, and the request's (frames, height, width, caption length), which a graph must leave free.
 * The VAE's inner channel counts are its own business: the contract fixes only what enters and leaves each chain.
 */
import type { TensorDType } from '../runtime/backend.js';
import { VAE_SPATIAL_PARTS, VAE_TEMPORAL_PARTS, type BlockKind } from './contract.js';
import type { Manifest } from './manifest-schema.js';

/** Open-Sora's VAE latent: 4 channels, 8× smaller than the video, 5 latent frames for every 17 frames. */
export const LATENT_CHANNELS = 4;
export const SPATIAL_FACTOR = 8;
export const LATENT_FRAMES_PER_CHUNK = 5;
export const FRAMES_PER_CHUNK = 17;
/** STDiT3's output: 4 velocity channels and 4 learned-sigma channels. */
const STDIT_OUT_CHANNELS = 8;
/** The 2-D decoder's output: RGB. */
const RGB = 3;

/** One dimension: its size for the probe, and whether the model fixes it (else the request decides it). */
export interface ContractDim {
  readonly size: number;
  readonly fixedByModel: boolean;
}

export interface ContractTensor {
  readonly name: string;
  readonly dtype: TensorDType;
  /** undefined: the shape is the model's own (what passes between two VAE blocks). */
  readonly dims: readonly ContractDim[] | undefined;
}

export interface ContractIO {
  readonly inputs: readonly ContractTensor[];
  readonly outputs: readonly ContractTensor[];
}

/** The request a probe stands for: small, but a real one (latent sizes as the pipeline would make them). */
export interface ProbeSize {
  /** Tokens per prompt (tokenizer.maxLength). */
  readonly tokens: number;
  /** Valid caption tokens of the probe prompt (L in the contract). */
  readonly captionTokens: number;
  /** Latent frames the STDiT sees. */
  readonly frames: number;
  /** Latent height and width. */
  readonly height: number;
  readonly width: number;
  /** Frames per 2-D decoder call. */
  readonly decodedFrames: number;
}

const model = (size: number): ContractDim => ({ size, fixedByModel: true });
const request = (size: number): ContractDim => ({ size, fixedByModel: false });

function spec(name: string, dims: readonly ContractDim[], dtype: TensorDType = 'float32'): ContractTensor {
  return { name, dtype, dims };
}

type Architecture = Manifest['architecture'];

export function contractTensors(kind: BlockKind, index: number, architecture: Architecture, size: ProbeSize): ContractIO {
  switch (kind) {
    case 't5-embed':
    case 't5-layer':
    case 't5-final-norm':
      return t5IO(kind, index, architecture.t5, size);
    case 'stdit-part1':
    case 'stdit-st':
    case 'stdit-tdtm':
    case 'stdit-part2':
      return stditIO(kind, architecture, size);
    case 'vae-temporal':
    case 'vae-spatial':
      return vaeIO(kind, index, size);
  }
}

function t5IO(kind: BlockKind, index: number, t5: Architecture['t5'], size: ProbeSize): ContractIO {
  const tokens = model(size.tokens);
  const hidden = [model(1), tokens, model(t5.d_model)];
  const bias = [model(1), model(t5.num_heads), tokens, tokens];
  const mask = [model(1), model(1), model(1), tokens];
  if (kind === 't5-embed') return { inputs: [spec('input_ids', [model(1), tokens], 'int64')], outputs: [spec('output', hidden)] };
  if (kind === 't5-final-norm') return { inputs: [spec('input', hidden)], outputs: [spec('output', hidden)] };
  if (index === 0) {
    // Layer 0 also carries STDiT's learned null caption, one row per token (caption width = T5 width).
    const caption = [tokens, model(t5.d_model)];
    return {
      inputs: [spec('hidden_states', hidden), spec('attention_mask', mask), spec('y_embedding', caption)],
      outputs: [spec('output_hidden_states', hidden), spec('output_position_bias', bias), spec('yNull', caption)],
    };
  }
  return {
    inputs: [spec('hidden_states', hidden), spec('attention_mask', mask), spec('position_bias', bias)],
    outputs: [spec('output_hidden_states', hidden)],
  };
}

function stditIO(kind: BlockKind, architecture: Architecture, size: ProbeSize): ContractIO {
  const hidden = model(architecture.stdit.hidden_size);
  const cfg = model(2); // every STDiT call is batch 2: conditional and unconditional
  const one = model(1);
  const patchesPerFrame = (Math.ceil(size.height / 2) * Math.ceil(size.width / 2));
  const tokens = request(size.frames * patchesPerFrame);
  const latent = (channels: number) => [cfg, model(channels), request(size.frames), request(size.height), request(size.width)];
  const captions = [one, request(2 * size.captionTokens), hidden];
  const tokensIO = [cfg, tokens, hidden];
  const mlp = [cfg, model(6 * architecture.stdit.hidden_size)];
  switch (kind) {
    case 'stdit-part1':
      return {
        inputs: [
          spec('z_in', latent(LATENT_CHANNELS)),
          spec('t', [cfg]),
          spec('y', [cfg, one, model(size.tokens), model(architecture.t5.d_model)]),
          spec('mask', [one, model(size.tokens)]),
          ...['fps', 'height', 'width'].map((name) => spec(name, [one])),
          ...['padH', 'padW'].map((name) => spec(name, [one], 'int64')),
        ],
        outputs: [
          spec('x', tokensIO),
          spec('outY', captions),
          spec('t_mlp', mlp),
          spec('T', [one], 'int64'),
          spec('outT', [cfg, hidden]),
        ],
      };
    case 'stdit-part2':
      return {
        inputs: [
          spec('z_in', latent(LATENT_CHANNELS)),
          spec('x', tokensIO),
          spec('t', [cfg, hidden]),
          ...['padH', 'padW'].map((name) => spec(name, [one], 'int64')),
        ],
        outputs: [spec('output', latent(STDIT_OUT_CHANNELS))],
      };
    default: {
      // The block-diagonal cross-attention mask: one row per query token of both CFG samples; TDTM blocks attend
      // from the ⌊T/2⌋ merged frame pairs, so their mask has half the rows (src/pipeline/attention-mask.ts).
      const queryFrames = kind === 'stdit-st' ? size.frames : Math.floor(size.frames / 2);
      const attn = [one, one, request(2 * queryFrames * patchesPerFrame), request(2 * size.captionTokens)];
      return {
        inputs: [spec('x', tokensIO), spec('y', captions), spec('t_mlp', mlp), spec('attn', attn), spec('T', [one], 'int64')],
        outputs: [spec('output', tokensIO)],
      };
    }
  }
}

/**
 * A VAE block's input and output as far as the contract knows them: the first block of each chain takes the latent,
 * the last returns the chain's result (pixels for the 2-D chain); what passes between blocks is the model's own.
 */
function vaeIO(kind: BlockKind, index: number, size: ProbeSize): ContractIO {
  const h = request(size.height);
  const w = request(size.width);
  const latent = (frames: number) => [model(1), model(LATENT_CHANNELS), request(frames), h, w];
  const inner = (name: string): ContractTensor => ({ name, dtype: 'float32', dims: undefined });
  const [parts, first, last] =
    kind === 'vae-temporal'
      ? [VAE_TEMPORAL_PARTS, latent(LATENT_FRAMES_PER_CHUNK), latent(FRAMES_PER_CHUNK)]
      : [
          VAE_SPATIAL_PARTS,
          latent(size.decodedFrames),
          [model(1), model(RGB), request(size.decodedFrames), request(SPATIAL_FACTOR * size.height), request(SPATIAL_FACTOR * size.width)],
        ];
  return {
    inputs: [index === 0 ? spec('latents', first) : inner('latents')],
    outputs: [index === parts.length - 1 ? spec('output', last) : inner('output')],
  };
}
