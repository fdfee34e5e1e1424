/**
 * Builds the Hugging Face fast-tokenizer files (`tokenizer.json`, `tokenizer_config.json`) of a T5 tokenizer from
 * its SentencePiece model (`spiece.model`), so that no Python `transformers`/`tokenizers` install is needed.
 *
 * The pipeline is the one that reproduces SentencePiece's own encoding (checked against ids the reference
 * implementation computed, test/fixtures/spiece): the model's precompiled character map (nmt_nfkc for T5), then
 * SentencePiece's `remove_extra_whitespaces` (runs of spaces collapsed, both ends stripped), `▁` for every space
 * with one prepended (`add_dummy_prefix`), Unigram with the model's pieces and scores. T5's tokenizer adds the
 * sentinel tokens `<extra_id_0>`… after the pieces (`<extra_id_0>` last) and appends `</s>`.
 */
import { parseSentencePieceModel, type SentencePieceModel } from './sentencepiece-model.js';

export const WORD_MARK = '\u2581';
const EOS = '</s>';
/** T5Tokenizer's default number of sentinel tokens when no tokenizer_config.json says otherwise. */
export const T5_DEFAULT_EXTRA_IDS = 100;

export interface T5TokenizerFiles {
  readonly tokenizer: Record<string, unknown>;
  readonly config: Record<string, unknown>;
  /** Pieces plus sentinels: the embedding must have at least this many rows. */
  readonly vocabSize: number;
}

export class TokenizerBuildError extends Error {}

/** An `added_tokens` entry: matched on the raw text, before normalization, as SentencePiece matches its symbols. */
function addedToken(id: number, content: string, special: boolean): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

function normalizer(model: SentencePieceModel): Record<string, unknown> | null {
  const steps: Record<string, unknown>[] = [];
  if (model.normalizer.precompiledCharsmap.length > 0) {
    const charsmap = Buffer.from(model.normalizer.precompiledCharsmap).toString('base64');
    steps.push({ type: 'Precompiled', precompiled_charsmap: charsmap });
  }
  if (model.normalizer.removeExtraWhitespaces) {
    steps.push({ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' });
    steps.push({ type: 'Strip', strip_left: true, strip_right: true });
  }
  return steps.length === 0 ? null : { type: 'Sequence', normalizers: steps };
}

function metaspace(model: SentencePieceModel): Record<string, unknown> {
  return { type: 'Metaspace', replacement: WORD_MARK, prepend_scheme: model.normalizer.addDummyPrefix ? 'always' : 'never', split: true };
}

function postProcessor(eosId: number): Record<string, unknown> {
  const sequence = (id: 'A' | 'B') => ({ Sequence: { id, type_id: 0 } });
  const eos = { SpecialToken: { id: EOS, type_id: 0 } };
  return {
    type: 'TemplateProcessing',
    single: [sequence('A'), eos],
    pair: [sequence('A'), eos, sequence('B'), eos],
    special_tokens: { [EOS]: { id: EOS, ids: [eosId], tokens: [EOS] } },
  };
}

/** Sentinel tokens in id order: `<extra_id_{n-1}>` first, `<extra_id_0>` last, as T5Tokenizer numbers them. */
function sentinels(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `<extra_id_${count - 1 - i}>`);
}

/**
 * `tokenizer.json` and `tokenizer_config.json` for a T5 SentencePiece model. `config` is the repository's own
 * tokenizer_config.json when it has one (its `extra_ids` decides the sentinel count); it is kept as it is.
 */
export function buildT5TokenizerFiles(spieceModel: Uint8Array, config?: Record<string, unknown>): T5TokenizerFiles {
  const model = parseSentencePieceModel(spieceModel);
  if (model.modelType !== 'unigram') throw new TokenizerBuildError(`a ${model.modelType} model; T5 uses a unigram model`);
  if (model.whitespaceAsSuffix) throw new TokenizerBuildError('treat_whitespace_as_suffix is set; T5 models never set it');
  const extraIds = config?.extra_ids ?? T5_DEFAULT_EXTRA_IDS;
  if (typeof extraIds !== 'number' || !Number.isInteger(extraIds) || extraIds < 0) {
    throw new TokenizerBuildError(`tokenizer_config.json: extra_ids: must be a non-negative integer, got ${JSON.stringify(extraIds)}`);
  }
  const eosId = model.pieces.findIndex((piece) => piece.piece === EOS);
  if (eosId < 0) throw new TokenizerBuildError(`no ${EOS} piece; T5 models have one`);
  const extra = sentinels(extraIds);
  const vocab: [string, number][] = [...model.pieces.map((p): [string, number] => [p.piece, p.score]), ...extra.map((t): [string, number] => [t, 0])];
  // Control and unknown pieces are special tokens (never produced from text); user-defined pieces are matched
  // whole before the model sees the text, as SentencePiece does.
  const added = model.pieces.flatMap((piece, id) => {
    if (piece.type === 'control' || piece.type === 'unknown') return [addedToken(id, piece.piece, true)];
    if (piece.type === 'user-defined') return [addedToken(id, piece.piece, false)];
    return [];
  });
  added.push(...extra.map((token, i) => addedToken(model.pieces.length + i, token, true)));
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: normalizer(model),
    pre_tokenizer: metaspace(model),
    post_processor: postProcessor(eosId),
    decoder: metaspace(model),
    model: { type: 'Unigram', unk_id: model.unkId, vocab, byte_fallback: model.byteFallback },
  };
  const piece = (id: number): string => model.pieces[id]!.piece;
  const builtConfig = {
    tokenizer_class: 'T5Tokenizer',
    eos_token: EOS,
    unk_token: piece(model.unkId),
    pad_token: model.pieces.findIndex((p) => p.piece === '<pad>') >= 0 ? '<pad>' : piece(model.unkId),
    extra_ids: extraIds,
    additional_special_tokens: [...extra].reverse(),
  };
  return { tokenizer, config: config ?? builtConfig, vocabSize: vocab.length };
}
