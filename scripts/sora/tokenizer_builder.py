"""Builds a small T5-style SentencePiece-Unigram tokenizer as Hugging Face `tokenizer.json` + `tokenizer_config.json`.

The real T5 vocabulary (32100 pieces trained by SentencePiece) cannot be downloaded here, so the tiny model ships
its own vocabulary with the same shape of contract: T5's special ids (`<pad>`=0, `</s>`=1, `<unk>`=2), `▁`-prefixed
word pieces, Unigram log-probability scores, the Metaspace pre-tokenizer/decoder and a `$A </s>` template.
The vocabulary is written here by hand instead of being trained: training needs `sentencepiece` (outside the
project's Debian package set) and a text corpus, turning its model into `tokenizer.json` needs `transformers`, and
a hand-written list is deterministic and keeps prompt words whole, which a 512-piece trained vocabulary would not.

Run from `scripts/`: `/usr/bin/python3 -m sora.tokenizer_builder OUT_DIR [--vocab-size 512]`.
"""

from __future__ import annotations

import argparse
import string
from pathlib import Path
from typing import Sequence

from sora.jsonio import write_canonical_json

WORD_MARK = "\u2581"  # SentencePiece's visible space, "▁"
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)  # ids 0, 1, 2 as in T5
MODEL_MAX_LENGTH = 300
DEFAULT_VOCAB_SIZE = 512

# Ordered roughly by how often they appear in video prompts; earlier words get higher scores.
PROMPT_WORDS = """
a the of in on and with at is are to from by an its their over under through into near while as for
aesthetic score
red orange yellow green blue purple pink brown black white gray golden silver dark bright colorful
circle square triangle sphere cube ball line spiral star ring
cat dog bird fish horse cow sheep lion tiger bear elephant rabbit fox wolf deer monkey panda duck owl eagle
butterfly whale dolphin shark turtle snake frog bee penguin
man woman person child girl boy people family dancer robot astronaut
walking running flying swimming jumping dancing falling rolling spinning moving floating driving riding
playing sitting standing eating glowing shining burning melting growing blooming
walks runs flies swims jumps dances falls rolls spins moves floats rises flows
slowly quickly gently
sky sun moon cloud rain snow storm wind fog ocean sea river lake beach wave water mountain forest tree
flower grass field garden desert city street road car train boat ship plane house building room kitchen
bridge tower castle village park night day morning sunset sunrise light fire smoke ice space planet galaxy
earth island valley waterfall cave underwater
beautiful small large big tiny giant old young happy cute fluffy calm peaceful busy futuristic ancient
cinematic realistic detailed high quality slow motion close up aerial view shot camera drone scene video
footage time lapse style animation painting photo vibrant soft warm cold wet misty snowy rainy sunny cloudy
background foreground lighting dramatic wide angle pan zoom tracking
stars clouds trees flowers mountains waves birds leaves rocks lights buildings cars
this that it there his her they around across along above behind between top
neon reflection shadow glass wooden metal stone sand dust leaf rock
""".split()

# Bare (non-▁) continuations so inflected forms split like SentencePiece would ("dogs" -> "▁dog", "s").
SUFFIXES = ("ing", "ed", "er", "est", "ly", "es")

# Every printable ASCII character except space (space is the word mark), so ASCII text never maps to <unk>.
CHARACTERS = tuple(ch for ch in string.printable if ch.isprintable() and not ch.isspace())

WORD_MARK_SCORE = -3.0
WORD_SCORE_TOP = -4.0
SUFFIX_SCORE_TOP = -7.5
RANK_STEP = 0.01
# Characters score far below words so that a known word always beats spelling it out letter by letter.
MARKED_CHAR_SCORE = -9.0
BARE_CHAR_SCORE = -10.0


def _ranked(pieces: list[str], top: float) -> list[tuple[str, float]]:
    # Distinct scores per rank avoid exact ties, whose resolution could differ between Unigram implementations.
    return [(piece, round(top - rank * RANK_STEP, 6)) for rank, piece in enumerate(pieces)]


def base_pieces(prompt_words: Sequence[str] = PROMPT_WORDS) -> list[tuple[str, float]]:
    """Specials, `▁`, words, suffixes and characters with their scores, before padding."""
    words = [WORD_MARK + word for word in prompt_words]
    marked_chars = [WORD_MARK + ch for ch in CHARACTERS if WORD_MARK + ch not in words]
    pieces = (
        [(token, 0.0) for token in SPECIAL_TOKENS]
        + [(WORD_MARK, WORD_MARK_SCORE)]
        + _ranked(words, WORD_SCORE_TOP)
        + _ranked(list(SUFFIXES), SUFFIX_SCORE_TOP)
        + [(piece, MARKED_CHAR_SCORE) for piece in marked_chars]
        + [(ch, BARE_CHAR_SCORE) for ch in CHARACTERS]
    )
    names = [piece for piece, _ in pieces]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate tokenizer pieces: {duplicates[:5]}")
    return pieces


def extra_id_tokens(count: int) -> list[str]:
    """Padding pieces in id order; as in T5, `<extra_id_0>` is the last id of the vocabulary."""
    return [f"<extra_id_{k}>" for k in reversed(range(count))]


def _added_token(token_id: int, content: str) -> dict:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def _metaspace() -> dict:
    return {"type": "Metaspace", "replacement": WORD_MARK, "prepend_scheme": "always", "split": True}


def _normalizer() -> dict:
    # T5 uses SentencePiece's precompiled nmt_nfkc charsmap; NFKC plus whitespace collapsing and stripping is the
    # readable equivalent for the characters this vocabulary covers.
    return {
        "type": "Sequence",
        "normalizers": [
            {"type": "NFKC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Strip", "strip_left": True, "strip_right": True},
        ],
    }


def _post_processor(eos_id: int) -> dict:
    sequence_a = {"Sequence": {"id": "A", "type_id": 0}}
    sequence_b = {"Sequence": {"id": "B", "type_id": 0}}
    eos = {"SpecialToken": {"id": EOS, "type_id": 0}}
    return {
        "type": "TemplateProcessing",
        "single": [sequence_a, eos],
        "pair": [sequence_a, eos, sequence_b, eos],
        "special_tokens": {EOS: {"id": EOS, "ids": [eos_id], "tokens": [EOS]}},
    }


def build_tokenizer(
    vocab_size: int = DEFAULT_VOCAB_SIZE, prompt_words: Sequence[str] = PROMPT_WORDS
) -> tuple[dict, dict]:
    """Returns (tokenizer.json, tokenizer_config.json) contents for a vocabulary of exactly `vocab_size` pieces."""
    pieces = base_pieces(prompt_words)
    if vocab_size < len(pieces):
        raise ValueError(f"vocab_size {vocab_size} is smaller than the {len(pieces)} base pieces")
    extra_ids = extra_id_tokens(vocab_size - len(pieces))
    vocab = pieces + [(token, 0.0) for token in extra_ids]
    specials = list(enumerate(SPECIAL_TOKENS)) + list(enumerate(extra_ids, start=len(pieces)))
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added_token(token_id, token) for token_id, token in specials],
        "normalizer": _normalizer(),
        "pre_tokenizer": _metaspace(),
        "post_processor": _post_processor(SPECIAL_TOKENS.index(EOS)),
        "decoder": _metaspace(),
        "model": {
            "type": "Unigram",
            "unk_id": SPECIAL_TOKENS.index(UNK),
            "vocab": [[piece, score] for piece, score in vocab],
            "byte_fallback": False,
        },
    }
    config = {
        "tokenizer_class": "T5Tokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": UNK,
        "extra_ids": len(extra_ids),
        "additional_special_tokens": extra_ids[::-1],
    }
    return tokenizer, config


def write_tokenizer(
    out_dir: str | Path, vocab_size: int = DEFAULT_VOCAB_SIZE, prompt_words: Sequence[str] = PROMPT_WORDS
) -> list[Path]:
    """Writes tokenizer.json and tokenizer_config.json into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer, config = build_tokenizer(vocab_size, prompt_words)
    return [
        write_canonical_json(out_dir / "tokenizer.json", tokenizer),
        write_canonical_json(out_dir / "tokenizer_config.json", config),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    args = parser.parse_args(argv)
    for path in write_tokenizer(args.out_dir, args.vocab_size):
        print(path)


if __name__ == "__main__":
    main()
