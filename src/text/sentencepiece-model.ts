/**
 * SentencePiece's `spiece.model` (a serialized `ModelProto`, sentencepiece_model.proto): the pieces with their
 * scores and types, and the settings a fast tokenizer needs to reproduce its encoding.
 */
import { fixed32Float, int32, WIRE_BYTES, WIRE_FIXED32, WIRE_VARINT, wireFields, type WireField } from './protobuf-wire.js';

/** SentencePiece.Type in the proto. */
export const PIECE_TYPES = { 1: 'normal', 2: 'unknown', 3: 'control', 4: 'user-defined', 5: 'unused', 6: 'byte' } as const;
export type PieceType = (typeof PIECE_TYPES)[keyof typeof PIECE_TYPES];

/** TrainerSpec.ModelType in the proto. */
const MODEL_TYPES = { 1: 'unigram', 2: 'bpe', 3: 'word', 4: 'char' } as const;
export type SentencePieceModelType = (typeof MODEL_TYPES)[keyof typeof MODEL_TYPES];

export interface SentencePiece {
  readonly piece: string;
  readonly score: number;
  readonly type: PieceType;
}

export interface SentencePieceModel {
  readonly pieces: readonly SentencePiece[];
  readonly modelType: SentencePieceModelType;
  readonly unkId: number;
  readonly byteFallback: boolean;
  /** Pieces end with the word mark instead of starting with it (never for T5). */
  readonly whitespaceAsSuffix: boolean;
  readonly normalizer: {
    readonly name: string;
    /** The compiled character map (empty when the model normalizes nothing). */
    readonly precompiledCharsmap: Uint8Array;
    readonly addDummyPrefix: boolean;
    readonly removeExtraWhitespaces: boolean;
    readonly escapeWhitespaces: boolean;
  };
}

// Field numbers of sentencepiece_model.proto.
const MODEL = { pieces: 1, trainerSpec: 2, normalizerSpec: 3 } as const;
const PIECE = { piece: 1, score: 2, type: 3 } as const;
const TRAINER = { modelType: 3, whitespaceAsSuffix: 24, byteFallback: 35, unkId: 40 } as const;
const NORMALIZER = { name: 1, charsmap: 2, addDummyPrefix: 3, removeExtraWhitespaces: 4, escapeWhitespaces: 5 } as const;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class SentencePieceModelError extends Error {}

function expectWire(field: WireField, wireType: number, what: string): void {
  if (field.wireType !== wireType) throw new SentencePieceModelError(`${what}: wire type ${field.wireType}, expected ${wireType}`);
}

function varintOf(field: WireField, what: string): bigint {
  expectWire(field, WIRE_VARINT, what);
  return field.varint!;
}

function bytesOf(field: WireField, what: string): Uint8Array {
  expectWire(field, WIRE_BYTES, what);
  return field.bytes!;
}

function parsePiece(message: Uint8Array, index: number): SentencePiece {
  let piece: string | undefined;
  let score = 0;
  let type: PieceType = 'normal';
  for (const field of wireFields(message)) {
    const what = `pieces[${index}]`;
    if (field.number === PIECE.piece) piece = utf8.decode(bytesOf(field, `${what}.piece`));
    else if (field.number === PIECE.score) {
      expectWire(field, WIRE_FIXED32, `${what}.score`);
      score = fixed32Float(field.bytes!);
    } else if (field.number === PIECE.type) {
      const code = Number(varintOf(field, `${what}.type`));
      const known = PIECE_TYPES[code as keyof typeof PIECE_TYPES];
      if (known === undefined) throw new SentencePieceModelError(`${what}.type: unknown piece type ${code}`);
      type = known;
    }
  }
  if (piece === undefined) throw new SentencePieceModelError(`pieces[${index}] has no piece text`);
  return { piece, score, type };
}

interface TrainerFacts {
  modelType: SentencePieceModelType;
  unkId: number;
  byteFallback: boolean;
  whitespaceAsSuffix: boolean;
}

function parseTrainer(message: Uint8Array): TrainerFacts {
  // Defaults of the proto: unigram, unk_id 0.
  const facts: TrainerFacts = { modelType: 'unigram', unkId: 0, byteFallback: false, whitespaceAsSuffix: false };
  for (const field of wireFields(message)) {
    if (field.number === TRAINER.modelType) {
      const code = Number(varintOf(field, 'trainer_spec.model_type'));
      const known = MODEL_TYPES[code as keyof typeof MODEL_TYPES];
      if (known === undefined) throw new SentencePieceModelError(`trainer_spec.model_type: unknown model type ${code}`);
      facts.modelType = known;
    } else if (field.number === TRAINER.unkId) facts.unkId = int32(varintOf(field, 'trainer_spec.unk_id'));
    else if (field.number === TRAINER.byteFallback) facts.byteFallback = varintOf(field, 'trainer_spec.byte_fallback') !== 0n;
    else if (field.number === TRAINER.whitespaceAsSuffix) {
      facts.whitespaceAsSuffix = varintOf(field, 'trainer_spec.treat_whitespace_as_suffix') !== 0n;
    }
  }
  return facts;
}

function parseNormalizer(message: Uint8Array | undefined): SentencePieceModel['normalizer'] {
  // Defaults of the proto: all three switches on.
  const spec = {
    name: '',
    precompiledCharsmap: new Uint8Array(0) as Uint8Array,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  for (const field of wireFields(message ?? new Uint8Array(0))) {
    if (field.number === NORMALIZER.name) spec.name = utf8.decode(bytesOf(field, 'normalizer_spec.name'));
    else if (field.number === NORMALIZER.charsmap) spec.precompiledCharsmap = bytesOf(field, 'normalizer_spec.precompiled_charsmap');
    else if (field.number === NORMALIZER.addDummyPrefix) spec.addDummyPrefix = varintOf(field, 'normalizer_spec.add_dummy_prefix') !== 0n;
    else if (field.number === NORMALIZER.removeExtraWhitespaces) {
      spec.removeExtraWhitespaces = varintOf(field, 'normalizer_spec.remove_extra_whitespaces') !== 0n;
    } else if (field.number === NORMALIZER.escapeWhitespaces) {
      spec.escapeWhitespaces = varintOf(field, 'normalizer_spec.escape_whitespaces') !== 0n;
    }
  }
  return spec;
}

/** Parses `spiece.model`; throws SentencePieceModelError (or WireFormatError) on a file that is not one. */
export function parseSentencePieceModel(bytes: Uint8Array): SentencePieceModel {
  const pieces: SentencePiece[] = [];
  let trainer: TrainerFacts | undefined;
  let normalizer: Uint8Array | undefined;
  for (const field of wireFields(bytes)) {
    if (field.number === MODEL.pieces) pieces.push(parsePiece(bytesOf(field, 'pieces'), pieces.length));
    else if (field.number === MODEL.trainerSpec) trainer = parseTrainer(bytesOf(field, 'trainer_spec'));
    else if (field.number === MODEL.normalizerSpec) normalizer = bytesOf(field, 'normalizer_spec');
  }
  if (pieces.length === 0) throw new SentencePieceModelError('no pieces (not a SentencePiece model)');
  if (trainer === undefined) throw new SentencePieceModelError('no trainer_spec (not a SentencePiece model)');
  if (trainer.unkId < 0 || trainer.unkId >= pieces.length) {
    throw new SentencePieceModelError(`trainer_spec.unk_id ${trainer.unkId} is not a piece id (0..${pieces.length - 1})`);
  }
  return { pieces, ...trainer, normalizer: parseNormalizer(normalizer) };
}
