import { MASKED } from '../pipeline/attention-mask.js';
import { runBlock, type BlockProvider } from '../pipeline/block-provider.js';
import { ResidentSet } from '../pipeline/resident-set.js';
import { blockName, float32Output, float32Tensor, residentFloat32Output, type Float32Tensor } from '../pipeline/tensors.js';
import { tensor } from '../runtime/tensor.js';
import type { TokenizedPrompt } from './tokenizer.js';

/** What the sampler needs from the prompt. */
export interface TextEncoding {
  /** [1,1,300,D] T5 encoding of the prompt. */
  readonly y: Float32Tensor;
  /** [1,1,300,D] the learned null caption (unconditional branch of CFG). */
  readonly yNull: Float32Tensor;
  /** [1,300] 1 for valid tokens, 0 for padding. */
  readonly mask: Float32Tensor;
}

const T5_EMBED = blockName('t5-embed');
const T5_FINAL_NORM = blockName('t5-final-norm');
const t5Layer = (index: number): string => blockName('t5-layer', index);

/**
 * T5 encoder, block by block: embedding → layer 0 (which also computes the relative position bias, shared by the
 * later layers, and yields the null caption) → layers 1..n−1 → final RMSNorm. The hidden states, the mask and the
 * position bias stay where the blocks run; the host gets the encoding and the null caption.
 */
export async function encodeText(
  provider: BlockProvider,
  tokens: TokenizedPrompt,
  layers: number,
): Promise<TextEncoding> {
  const length = tokens.ids.length;
  provider.preload?.([T5_EMBED, ...Array.from({ length: layers }, (_, i) => t5Layer(i)), T5_FINAL_NORM]);
  const resident = new ResidentSet(provider.backend);
  try {
    const input_ids = tensor('int64', [1, length], tokens.ids);
    const embed = await runBlock(provider, T5_EMBED, { input_ids }, t5Layer(0), { keep: ['output'] });
    const embedded = resident.add(residentFloat32Output(embed, T5_EMBED, 'output'));
    const channels = embedded.dims[2]!;
    const attentionMask = await resident.upload(float32Tensor([1, 1, 1, length], additiveMask(tokens.mask)), true);

    const first = await runBlock(
      provider,
      t5Layer(0),
      {
        hidden_states: embedded,
        attention_mask: attentionMask,
        // All ones, so yNull is the STDiT null-caption embedding stored in this block, as the app does it.
        y_embedding: float32Tensor([length, channels], new Float32Array(length * channels).fill(1)),
      },
      layers > 1 ? t5Layer(1) : T5_FINAL_NORM,
      { keep: ['output_hidden_states', 'output_position_bias'], consume: ['hidden_states'] },
    );
    const { output_position_bias: positionBias } = resident.kept(first, t5Layer(0), ['output_position_bias']);
    const yNull = float32Output(first, t5Layer(0), 'yNull');
    let hidden = resident.add(residentFloat32Output(first, t5Layer(0), 'output_hidden_states'));

    for (let i = 1; i < layers; i++) {
      const next = i + 1 < layers ? t5Layer(i + 1) : T5_FINAL_NORM;
      const outputs = await runBlock(
        provider,
        t5Layer(i),
        { hidden_states: hidden, attention_mask: attentionMask, position_bias: positionBias },
        next,
        { keep: ['output_hidden_states'], consume: ['hidden_states'] },
      );
      hidden = resident.add(residentFloat32Output(outputs, t5Layer(i), 'output_hidden_states'));
    }

    const final = await runBlock(provider, T5_FINAL_NORM, { input: hidden }, undefined, { consume: ['input'] });
    const y = float32Output(final, T5_FINAL_NORM, 'output');
    return {
      y: float32Tensor([1, 1, length, channels], y.data),
      yNull: float32Tensor([1, 1, length, yNull.data.length / length], yNull.data),
      mask: float32Tensor([1, length], tokens.mask),
    };
  } finally {
    await resident.release();
  }
}

/** HF T5's extended mask: 0 where attended, the most negative float32 where padded. */
function additiveMask(mask: Float32Array): Float32Array {
  return mask.map((valid) => (valid === 1 ? 0 : MASKED));
}
