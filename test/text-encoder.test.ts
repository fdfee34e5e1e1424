import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logging.js';
import { loadModel } from '../src/model/manifest.js';
import type { Float32Tensor } from '../src/pipeline/tensors.js';
import { encodeText } from '../src/text/text-encoder.js';
import { PromptTokenizer } from '../src/text/tokenizer.js';
import { maxRelativeError, readGolden, TINY_MODEL, tinyBlocks } from './helpers/golden.js';

// The shipped tiny model's tokenizer (real @huggingface/tokenizers) and T5 blocks (real ONNX Runtime) against the
// golden data of scripts/make_golden.py: same ids as the Python tokenizer, same encoding as the PyTorch T5.
describe('prompt → T5 encoding on the tiny model', () => {
  it('tokenizes the golden prompt to the same ids and mask as the Python reference', async () => {
    const model = await loadModel(TINY_MODEL);
    const golden = await readGolden('t5embed-tokens.json');
    const files = PromptTokenizer.filesIn(model.dir, model.tokenizer.files);
    const tokenizer = await PromptTokenizer.load(files, model.tokenizer, createLogger('silent'));
    const tokens = tokenizer.encode(golden.meta.prompt as string);
    expect(tokens.ids).toEqual(golden.inputs.input_ids!.data);
    expect(tokens.validLength).toBe(golden.meta.validTokens);
  });

  it('encodes to the reference y, y_null and mask (max relative error ≤ 1e-4)', async () => {
    const ids = await readGolden('t5embed-tokens.json');
    const reference = await readGolden('sampler-opensora.json'); // holds the stored text encoding
    const validLength = ids.meta.validTokens as number;
    const mask = new Float32Array(300).fill(1, 0, validLength);
    const tiny = await tinyBlocks('t5');
    try {
      const text = await encodeText(
        tiny.provider,
        { ids: ids.inputs.input_ids!.data as BigInt64Array, mask, validLength },
        tiny.model.architecture.t5.num_layers,
      );
      for (const name of ['y', 'yNull'] as const) {
        const expected = reference.inputs[name] as Float32Tensor;
        expect(text[name].dims).toEqual(expected.dims);
        expect(maxRelativeError(text[name].data, expected.data), name).toBeLessThanOrEqual(1e-4);
      }
      expect(text.mask.dims).toEqual([1, 300]);
      expect(text.mask.data).toEqual(reference.inputs.mask!.data);
    } finally {
      await tiny.close();
    }
  });
});
