/**
 * tokenizer.json built from a SentencePiece model by the project's own code, loaded by the runtime's tokenizer
 * (@huggingface/tokenizers), against ids that SentencePiece itself computed (scripts/make_spiece_fixtures.py, run
 * once in a throwaway venv; the fixtures are committed). Also the legacy tokenizer.json format without `model.type`.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { PromptTokenizer } from '../src/text/tokenizer.js';
import { parseSentencePieceModel } from '../src/text/sentencepiece-model.js';
import { buildT5TokenizerFiles, TokenizerBuildError } from '../src/text/t5-tokenizer-json.js';
import { WireFormatError } from '../src/text/protobuf-wire.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { expectSoraError } from './helpers/expect-error.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/spiece/', import.meta.url));
const logger = pino({ level: 'silent' });

interface Vector {
  readonly text: string;
  readonly ids: number[];
  readonly pieces: string[];
}

async function fixtures() {
  const spiece = await readFile(join(FIXTURES, 'spiece.model'));
  const config = JSON.parse(await readFile(join(FIXTURES, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const { vectors, vocabSize } = JSON.parse(await readFile(join(FIXTURES, 'vectors.json'), 'utf8')) as {
    vectors: Vector[];
    vocabSize: number;
  };
  return { spiece, config, vectors, vocabSize };
}

async function loadTokenizer(tokenizer: unknown, config: unknown): Promise<PromptTokenizer> {
  const dir = await mkdtemp(join(tmpdir(), 'spiece-'));
  try {
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    // A long maxLength keeps every test vector whole.
    return await PromptTokenizer.load(PromptTokenizer.filesIn(dir, []), { maxLength: 512, padId: 0, eosId: 1 }, logger);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function textIds(tokenizer: PromptTokenizer, text: string): number[] {
  const encoded = tokenizer.encode(text);
  return [...encoded.ids.subarray(0, encoded.validLength - 1)].map(Number); // without the EOS encode appends
}

/** What tokenizers 0.10-era converters wrote: no model.type, WhitespaceSplit + Metaspace(add_prefix_space). */
function legacyFormat(tokenizer: Record<string, unknown>): Record<string, unknown> {
  const model = { ...(tokenizer.model as Record<string, unknown>) };
  delete model.type;
  delete model.byte_fallback;
  const metaspace = { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true };
  const normalizer = (tokenizer.normalizer as { normalizers: { type: string }[] }).normalizers.find((n) => n.type === 'Precompiled');
  return {
    ...tokenizer,
    normalizer,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, metaspace] },
    decoder: metaspace,
    model,
  };
}

describe('SentencePiece model parsing', () => {
  it("reads the pieces, scores, types and T5's settings from spiece.model", async () => {
    const { spiece, vocabSize } = await fixtures();
    const model = parseSentencePieceModel(spiece);
    expect(model.pieces).toHaveLength(vocabSize);
    expect(model.pieces.slice(0, 3)).toEqual([
      { piece: '<pad>', score: 0, type: 'control' },
      { piece: '</s>', score: 0, type: 'control' },
      { piece: '<unk>', score: 0, type: 'unknown' },
    ]);
    expect(model.pieces.slice(3).every((p) => p.type === 'normal' && p.score < 0)).toBe(true);
    expect(model).toMatchObject({ modelType: 'unigram', unkId: 2, byteFallback: false, whitespaceAsSuffix: false });
    expect(model.normalizer).toMatchObject({ name: 'nmt_nfkc', addDummyPrefix: true, removeExtraWhitespaces: true });
    expect(model.normalizer.precompiledCharsmap.length).toBeGreaterThan(1000);
  });

  it('rejects files that are not SentencePiece models', async () => {
    const { spiece } = await fixtures();
    expect(() => parseSentencePieceModel(spiece.subarray(0, spiece.length - 7))).toThrow(WireFormatError);
    expect(() => parseSentencePieceModel(new TextEncoder().encode('{"version": "1.0"}'))).toThrow();
    expect(() => buildT5TokenizerFiles(spiece, { extra_ids: -1 })).toThrow(TokenizerBuildError);
    recordFaults({ badInputs: 3 });
  });
});

describe('tokenizer.json built from spiece.model', () => {
  it('gives the ids the reference SentencePiece gives, on every test vector', async () => {
    const { spiece, config, vectors } = await fixtures();
    const files = buildT5TokenizerFiles(spiece, config);
    const tokenizer = await loadTokenizer(files.tokenizer, files.config);
    expect(vectors.length).toBeGreaterThan(15);
    for (const vector of vectors) expect(textIds(tokenizer, vector.text), JSON.stringify(vector.text)).toEqual(vector.ids);
  });

  it("adds T5's sentinels after the pieces, <extra_id_0> last, as special tokens", async () => {
    const { spiece, config, vocabSize } = await fixtures();
    const files = buildT5TokenizerFiles(spiece, config);
    expect(files.vocabSize).toBe(vocabSize + 100);
    const vocab = (files.tokenizer.model as { vocab: [string, number][] }).vocab;
    expect(vocab[vocabSize]).toEqual(['<extra_id_99>', 0]);
    expect(vocab.at(-1)).toEqual(['<extra_id_0>', 0]);
    const tokenizer = await loadTokenizer(files.tokenizer, files.config);
    expect(textIds(tokenizer, 'a <extra_id_0> dog')).toEqual([26, vocabSize + 99, 214]);
    // Without a tokenizer_config.json: T5Tokenizer's default of 100 sentinels, and a config written for it.
    const bare = buildT5TokenizerFiles(spiece);
    expect(bare.vocabSize).toBe(vocabSize + 100);
    expect(bare.config).toMatchObject({ tokenizer_class: 'T5Tokenizer', eos_token: '</s>', extra_ids: 100 });
  });
});

describe('legacy tokenizer.json (no model.type)', () => {
  it('loads, and encodes the test vectors as the current format does', async () => {
    const { spiece, config, vectors } = await fixtures();
    const files = buildT5TokenizerFiles(spiece, config);
    const legacy = legacyFormat(files.tokenizer);
    expect((legacy.model as Record<string, unknown>).type).toBeUndefined();
    const tokenizer = await loadTokenizer(legacy, files.config);
    for (const vector of vectors) expect(textIds(tokenizer, vector.text), JSON.stringify(vector.text)).toEqual(vector.ids);
  });

  it('is refused with the file and field named when the model can be neither read nor inferred', async () => {
    const { spiece, config } = await fixtures();
    const legacy = legacyFormat(buildT5TokenizerFiles(spiece, config).tokenizer);
    const broken = { ...legacy, model: { unk_id: 2, vocab: { a: 1 } } };
    await expectSoraError(loadTokenizer(broken, config), 'MODEL', 'tokenizer.json: model: has no type and no Unigram vocabulary');
    recordFaults({ badInputs: 1 });
  });
});
