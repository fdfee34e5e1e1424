import json

import numpy as np
import pytest
import torch

from sora.golden_io import GoldenFormatError, decode_tensor, encode_tensor, golden_bytes, read_golden, write_golden


def test_encoding_is_little_endian_base64():
    assert encode_tensor(np.array([1.0], dtype=np.float32)) == {"dtype": "float32", "shape": [1], "data": "AACAPw=="}
    assert encode_tensor(torch.tensor([[1]])) == {"dtype": "int64", "shape": [1, 1], "data": "AQAAAAAAAAA="}


def test_round_trip_is_exact(tmp_path):
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1))
    special = np.array([np.nan, np.inf, -0.0, 1e-45], dtype=np.float32)
    ids = np.array([[5, 0, -3]], dtype=np.int64)
    path = write_golden(tmp_path / "sub" / "g.json", "stdit3_ST_0", {"x": x, "ids": ids}, {"s": special},
                        meta={"seed": 1, "note": "synthetic"})
    golden = read_golden(path)
    assert golden.block == "stdit3_ST_0"
    assert golden.meta == {"seed": 1, "note": "synthetic"}
    np.testing.assert_array_equal(golden.inputs["x"], x.numpy())
    np.testing.assert_array_equal(golden.inputs["ids"], ids)
    assert golden.outputs["s"].tobytes() == special.tobytes()
    assert golden.inputs["x"].flags.writeable


def test_bytes_are_deterministic_and_keys_sorted():
    inputs = {"b": np.zeros(2, np.float32), "a": np.ones(1, np.int64)}
    first = golden_bytes("case", inputs, {})
    second = golden_bytes("case", dict(reversed(list(inputs.items()))), {})
    assert first == second and first.endswith(b"\n")
    assert list(json.loads(first)["inputs"]) == ["a", "b"]
    assert "meta" not in json.loads(first)


@pytest.mark.parametrize("value", [np.zeros(2, np.float64), torch.zeros(2, dtype=torch.float16), np.zeros(2, np.int32)])
def test_other_dtypes_are_rejected(value):
    with pytest.raises(GoldenFormatError, match="float32 or int64"):
        encode_tensor(value)


def test_length_mismatch_is_reported():
    entry = encode_tensor(np.zeros(3, np.float32))
    entry["shape"] = [4]
    with pytest.raises(GoldenFormatError, match="do not match shape"):
        decode_tensor(entry, "x")
    with pytest.raises(GoldenFormatError, match="x: data is not base64"):
        decode_tensor(dict(entry, data="not base64!"), "x")


def test_unreadable_file_names_path(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{")
    with pytest.raises(GoldenFormatError, match="bad.json"):
        read_golden(path)
