import json
import pathlib
import shutil
import string
import subprocess

import pytest

from sora.tokenizer_builder import (
    BARE_CHAR_SCORE,
    MARKED_CHAR_SCORE,
    PROMPT_WORDS,
    WORD_MARK,
    base_pieces,
    build_tokenizer,
    write_tokenizer,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
JS_TOKENIZERS = REPO_ROOT / "node_modules" / "@huggingface" / "tokenizers"


def vocab_of(tokenizer):
    return [piece for piece, _ in tokenizer["model"]["vocab"]]


def test_writes_identical_bytes_every_run(tmp_path):
    first = write_tokenizer(tmp_path / "a")
    second = write_tokenizer(tmp_path / "b")
    assert [p.name for p in first] == ["tokenizer.json", "tokenizer_config.json"]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()


def test_special_ids_and_size_follow_t5():
    tokenizer, config = build_tokenizer(512)
    vocab = vocab_of(tokenizer)
    assert len(vocab) == 512
    assert vocab[:3] == ["<pad>", "</s>", "<unk>"]
    assert tokenizer["model"]["unk_id"] == 2
    assert vocab[-1] == "<extra_id_0>"  # T5 numbers the sentinels down from the end
    assert config["additional_special_tokens"][0] == "<extra_id_0>"
    assert config["extra_ids"] == 512 - len(base_pieces())
    added = {entry["content"]: entry["id"] for entry in tokenizer["added_tokens"]}
    assert added["</s>"] == 1 and added["<extra_id_0>"] == 511
    assert config["model_max_length"] == 300
    assert config["tokenizer_class"] == "T5Tokenizer"
    assert (config["eos_token"], config["pad_token"], config["unk_token"]) == ("</s>", "<pad>", "<unk>")


def test_every_printable_ascii_character_is_a_piece_with_and_without_word_mark():
    vocab = set(vocab_of(build_tokenizer()[0]))
    for ch in string.printable.strip():
        if not ch.isspace():
            assert ch in vocab and WORD_MARK + ch in vocab, ch


def test_whole_words_outscore_their_spelling():
    scores = dict(build_tokenizer()[0]["model"]["vocab"])
    for word in PROMPT_WORDS:
        spelled = MARKED_CHAR_SCORE + BARE_CHAR_SCORE * (len(word) - 1)
        assert len(word) == 1 or scores[WORD_MARK + word] > spelled, word
    assert {"▁aesthetic", "▁score", "▁red", "▁cat", "▁running"} <= scores.keys()


def test_vocab_smaller_than_base_pieces_is_rejected():
    with pytest.raises(ValueError, match="smaller than"):
        build_tokenizer(100)


def test_larger_vocab_is_padded_with_sentinels():
    tokenizer, config = build_tokenizer(600)
    assert len(vocab_of(tokenizer)) == 600
    assert config["extra_ids"] == 600 - len(base_pieces())


def test_pipeline_components_match_t5_layout():
    tokenizer, _ = build_tokenizer()
    assert tokenizer["model"]["type"] == "Unigram"
    assert tokenizer["pre_tokenizer"]["type"] == "Metaspace"
    assert tokenizer["pre_tokenizer"]["prepend_scheme"] == "always"
    assert tokenizer["decoder"]["type"] == "Metaspace"
    assert [n["type"] for n in tokenizer["normalizer"]["normalizers"]] == ["NFKC", "Replace", "Strip"]
    assert tokenizer["post_processor"]["single"][-1] == {"SpecialToken": {"id": "</s>", "type_id": 0}}


NODE_SCRIPT = """
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "node:fs";
const request = JSON.parse(fs.readFileSync(0, "utf8"));
const read = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
const tokenizer = new Tokenizer(read(request.tokenizer), read(request.config));
const results = request.prompts.map((prompt) => {
  const plain = tokenizer.encode(prompt, { add_special_tokens: false });
  const withEos = tokenizer.encode(prompt);
  return { tokens: plain.tokens, ids: plain.ids, idsWithEos: withEos.ids };
});
process.stdout.write(JSON.stringify(results));
"""

EXPECTED_PIECES = {
    "a red ball rolling on the grass aesthetic score: 6.5.": [
        "▁a", "▁red", "▁ball", "▁rolling", "▁on", "▁the", "▁grass",
        "▁aesthetic", "▁score", ":", "▁6", ".", "5", ".",
    ],
    "A Quokka, running dogs!": ["▁A", "▁Q", "u", "o", "k", "k", "a", ",", "▁running", "▁dog", "s", "!"],
    "  calm\tocean   at  sunset ": ["▁calm", "▁ocean", "▁at", "▁sunset"],
    "\ufb01sh": ["▁fish"],  # NFKC folds the ligature
}


@pytest.mark.skipif(shutil.which("node") is None or not JS_TOKENIZERS.is_dir(), reason="node or tokenizers.js missing")
def test_loads_and_tokenizes_in_tokenizers_js(tmp_path):
    tokenizer_path, config_path = write_tokenizer(tmp_path)
    request = {"tokenizer": str(tokenizer_path), "config": str(config_path), "prompts": list(EXPECTED_PIECES)}
    completed = subprocess.run(
        ["node", "--input-type=module", "-e", NODE_SCRIPT],
        cwd=REPO_ROOT, input=json.dumps(request), capture_output=True, text=True, timeout=60, check=True,
    )
    vocab = vocab_of(json.loads(tokenizer_path.read_text(encoding="utf-8")))
    for (prompt, expected), result in zip(EXPECTED_PIECES.items(), json.loads(completed.stdout)):
        assert result["tokens"] == expected, prompt
        assert result["ids"] == [vocab.index(piece) for piece in expected]
        assert 2 not in result["ids"]  # no <unk>
        assert result["idsWithEos"] == result["ids"] + [1]
