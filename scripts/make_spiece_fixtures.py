#!/usr/bin/env python3
"""Writes test/fixtures/spiece/: a small T5-style SentencePiece model and the ids the reference implementation gives.

    python -m venv /tmp/spm && /tmp/spm/bin/pip install sentencepiece==0.2.3
    /tmp/spm/bin/python scripts/make_spiece_fixtures.py [--out test/fixtures/spiece]

The real T5 `spiece.model` cannot be downloaded here, so a model with the same settings is trained on a generated
corpus of prompt-like sentences: Unigram, `nmt_nfkc` normalisation (the precompiled charsmap T5's model carries),
T5's special ids (`<pad>` 0, `</s>` 1, `<unk>` 2, no BOS), dummy prefix and extra-whitespace removal on. The
TypeScript tokenizer builder (src/text/t5-tokenizer-json.ts) turns `spiece.model` into `tokenizer.json`;
test/t5-tokenizer-json.test.ts checks its ids against `vectors.json`, computed here by SentencePiece itself.

`sentencepiece` is needed only to make these files: it is not a dependency of the project or of its tests.
Vocabulary: 400 pieces, plus T5's `<extra_id_N>` tokens added by the tokenizer config (extra_ids 100), so that the
model fits the tiny T5's 512-row embedding and the tests can run it end to end.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import sentencepiece as spm

from sora.tokenizer_builder import PROMPT_WORDS

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "test" / "fixtures" / "spiece"
VOCAB_SIZE = 400
EXTRA_IDS = 100
SENTENCES = 4000
SEED = 1234

# Lines that put accents, full-width forms, ligatures and punctuation into the corpus, so the vocabulary and the
# charsmap both have something to do on the test vectors.
EXTRA_LINES = [
    "Café crème brûlée in a Parisian café, 4K, 60 fps.",
    "A naïve façade; the résumé of a señor at the fiesta.",
    "ＦＵＬＬ－ＷＩＤＴＨ ｔｅｘｔ ａｎｄ ｄｉｇｉｔｓ １２３",
    "ﬁne ﬂowers … and “quoted” words — with dashes.",
    "Numbers: 1, 22, 333, 4444 and 3.14 or 2,000,000.",
]

# What the tests check: everyday prompts, then the cases where normalisation matters.
TEST_VECTORS = [
    "a dog running on a beach",
    "A Red Circle moving up on a black background.",
    "cinematic aerial view of a futuristic city at sunset, 4K",
    "",
    "   leading and trailing spaces   ",
    "many     spaces\tand\ttabs\nand\nnew lines",
    "Café crème brûlée",
    "Cafe\u0301 with a combining accent",
    "ＦＵＬＬ－ＷＩＤＴＨ ｔｅｘｔ １２３",
    "ﬁne ﬂowers … “quoted” — dash",
    "non\u00a0breaking\u2003spaces",
    "zero\u200bwidth and soft\u00adhyphen",
    "unknown characters: 日本語 🐶🐱 ∑∫",
    "antidisestablishmentarianism supercalifragilistic",
    "Numbers 1234567890 and 3.14159",
    "MiXeD CaSe WoRdS",
    "punctuation!!! ??? ... ,,, ;;; :::",
    "a\u2581visible word mark",
]


def corpus_lines(rng: random.Random) -> list[str]:
    lines = []
    for _ in range(SENTENCES):
        words = [rng.choice(PROMPT_WORDS) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice([".", ",", "", "!", " 4K", " 24 fps"]))
    return lines + EXTRA_LINES * 20


def train(model_prefix: Path, corpus: Path) -> None:
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(model_prefix),
        vocab_size=VOCAB_SIZE,
        model_type="unigram",
        normalization_rule_name="nmt_nfkc",
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        num_threads=1,
        minloglevel=2,
    )


def tokenizer_config() -> dict:
    """What T5Tokenizer.save_pretrained writes next to spiece.model (the DeepFloyd repository has this file)."""
    return {
        "additional_special_tokens": [f"<extra_id_{i}>" for i in range(EXTRA_IDS)],
        "eos_token": "</s>",
        "extra_ids": EXTRA_IDS,
        "model_max_length": 512,
        "pad_token": "<pad>",
        "tokenizer_class": "T5Tokenizer",
        "unk_token": "<unk>",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        corpus = Path(work) / "corpus.txt"
        corpus.write_text("\n".join(corpus_lines(random.Random(SEED))) + "\n", encoding="utf-8")
        train(Path(work) / "spiece", corpus)
        (args.out / "spiece.model").write_bytes((Path(work) / "spiece.model").read_bytes())
    processor = spm.SentencePieceProcessor(model_file=str(args.out / "spiece.model"))
    vectors = [
        {"text": text, "ids": processor.encode(text), "pieces": processor.encode(text, out_type=str)}
        for text in TEST_VECTORS
    ]
    header = {"generator": f"scripts/make_spiece_fixtures.py, sentencepiece {spm.__version__}",
              "vocabSize": processor.get_piece_size()}
    # One vector a line keeps the file reviewable.
    rows = ",\n    ".join(json.dumps(vector, ensure_ascii=False) for vector in vectors)
    text = json.dumps(header, ensure_ascii=False)[:-1] + f', "vectors": [\n    {rows}\n]}}\n'
    (args.out / "vectors.json").write_text(text, encoding="utf-8")
    (args.out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {processor.get_piece_size()} pieces, {len(vectors)} vectors")


if __name__ == "__main__":
    main()
