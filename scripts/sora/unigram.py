"""Minimal reader of a Hugging Face Unigram `tokenizer.json`, enough to tokenize prompts for golden data.

Debian ships no `tokenizers`/`sentencepiece`, and the golden text encoding must start from the ids the runtime's
tokenizer (tokenizers.js) produces. This follows the pipeline tokenizer_builder writes: NFKC, whitespace collapsed
and stripped, Metaspace (`▁` for spaces, prepended, split before every `▁`), then per word the segmentation with
the highest total log-probability (Viterbi). Characters outside the vocabulary become `<unk>`. Of two segmentations
with equal totals the one with the longer last piece wins; the builder's distinct scores make such ties unlikely.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Dict, List, Tuple, Union

WORD_MARK = "\u2581"
UNKNOWN_PENALTY = 10.0  # HF Unigram scores an unknown character at (lowest score - 10)


class UnigramTokenizer:
    def __init__(self, tokenizer_json: dict):
        model = tokenizer_json["model"]
        if model.get("type") != "Unigram":
            raise ValueError(f"not a Unigram tokenizer (model type {model.get('type')!r})")
        self.scores: Dict[str, Tuple[int, float]] = {
            piece: (token_id, score) for token_id, (piece, score) in enumerate(model["vocab"])
        }
        self.unk_id: int = model["unk_id"]
        self.unknown_score = min(score for _, score in model["vocab"]) - UNKNOWN_PENALTY
        self.longest = max(len(piece) for piece, _ in model["vocab"])

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "UnigramTokenizer":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def words(self, text: str) -> List[str]:
        text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()
        marked = WORD_MARK + text.replace(" ", WORD_MARK)
        return [WORD_MARK + word for word in marked.split(WORD_MARK) if word]

    def _segment(self, word: str) -> List[int]:
        # best[i] = (score, start of the last piece, its id) of the best segmentation of word[:i]
        best: List[Tuple[float, int, int]] = [(0.0, 0, -1)] + [(float("-inf"), 0, -1)] * len(word)
        for end in range(1, len(word) + 1):
            for start in range(max(0, end - self.longest), end):
                piece = word[start:end]
                if piece in self.scores:
                    token_id, score = self.scores[piece]
                elif end - start == 1:
                    token_id, score = self.unk_id, self.unknown_score
                else:
                    continue
                total = best[start][0] + score
                if total > best[end][0]:
                    best[end] = (total, start, token_id)
        ids = []
        end = len(word)
        while end > 0:
            _, start, token_id = best[end]
            ids.append(token_id)
            end = start
        return ids[::-1]

    def encode(self, text: str) -> List[int]:
        """Ids without special tokens (no EOS)."""
        return [token_id for word in self.words(text) for token_id in self._segment(word)]
