import json
import struct

import numpy as np
import pytest
import torch

from sora.safetensors_io import (
    CheckpointError,
    CheckpointReader,
    SafetensorsFile,
    write_safetensors,
    write_sharded_safetensors,
)


def sample_tensors():
    generator = torch.Generator().manual_seed(0)
    return {
        "blocks.0.attn.weight": torch.randn(4, 6, generator=generator),
        "blocks.0.attn.bias": torch.randn(6, generator=generator),
        "embed.weight": torch.randn(10, 3, generator=generator),
        "steps": torch.arange(5, dtype=torch.int64),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5),
    }


def assert_same(reader, tensors):
    assert reader.keys() == sorted(tensors)
    for name, expected in tensors.items():
        assert reader.shape(name) == tuple(expected.shape)
        loaded = reader.load(name)
        assert loaded.dtype == (torch.int64 if expected.dtype == torch.int64 else torch.float32)
        assert torch.equal(loaded, expected.float() if expected.is_floating_point() else expected), name


def test_round_trip_and_metadata(tmp_path):
    tensors = sample_tensors()
    path = write_safetensors(tmp_path / "model.safetensors", tensors, {"format": "pt"})
    assert_same(CheckpointReader(path), tensors)
    assert_same(CheckpointReader(tmp_path), tensors)  # a folder holding one file
    raw = SafetensorsFile(path)
    assert raw.metadata == {"format": "pt"}
    assert raw.dtype("steps") == "I64"


def test_writing_is_byte_identical(tmp_path):
    first = write_safetensors(tmp_path / "a.safetensors", sample_tensors())
    second = write_safetensors(tmp_path / "b.safetensors", dict(reversed(list(sample_tensors().items()))))
    assert first.read_bytes() == second.read_bytes()
    (header_length,) = struct.unpack("<Q", first.read_bytes()[:8])
    assert header_length % 8 == 0


def test_half_precision_is_widened_to_float32(tmp_path):
    values = torch.tensor([[1.0, -2.5, 0.333], [65504.0, 1e-3, -0.0]])
    path = write_safetensors(tmp_path / "half.safetensors", {"h": values.half(), "b": values.bfloat16()})
    reader = SafetensorsFile(path)
    assert (reader.dtype("h"), reader.dtype("b")) == ("F16", "BF16")
    assert torch.equal(reader.load("h"), values.half().float())
    assert torch.equal(reader.load("b"), values.bfloat16().float())


def test_sharded_index_and_folder(tmp_path):
    tensors = sample_tensors()
    index_path = write_sharded_safetensors(tmp_path, tensors, max_shard_bytes=100)
    weight_map = json.loads(index_path.read_text())["weight_map"]
    assert len(set(weight_map.values())) > 1
    assert index_path.name == "model.safetensors.index.json"
    assert_same(CheckpointReader(index_path), tensors)
    assert_same(CheckpointReader(tmp_path), tensors)


def test_sharded_pytorch_bins(tmp_path):
    tensors = sample_tensors()
    names = sorted(tensors)
    shards = {"pytorch_model-00001-of-00002.bin": names[:3], "pytorch_model-00002-of-00002.bin": names[3:]}
    for shard, keys in shards.items():
        torch.save({key: tensors[key] for key in keys}, tmp_path / shard)
    weight_map = {key: shard for shard, keys in shards.items() for key in keys}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert_same(CheckpointReader(tmp_path), tensors)


def test_missing_shard_is_named(tmp_path):
    index_path = write_sharded_safetensors(tmp_path, sample_tensors(), max_shard_bytes=100)
    next(tmp_path.glob("model-00001-*.safetensors")).unlink()
    with pytest.raises(CheckpointError, match="model-00001"):
        CheckpointReader(index_path)


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
])
def test_pytorch_checkpoint_wrappers(tmp_path, wrap):
    tensors = {"a.weight": torch.randn(2, 3), "b": torch.randn(4).half()}
    torch.save(wrap(tensors), tmp_path / "ckpt.pth")
    assert_same(CheckpointReader(tmp_path / "ckpt.pth"), tensors)


def test_pytorch_checkpoint_without_tensors_is_rejected(tmp_path):
    torch.save({"a": torch.zeros(1), "note": "text"}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad.pt.*not tensors"):
        CheckpointReader(tmp_path / "bad.pt")


def corrupt(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("content, problem", [
    (b"\x01\x02", "too short"),
    (struct.pack("<Q", 1 << 40) + b"{}", "header length"),
    (struct.pack("<Q", 4) + b"{no}", "not valid JSON"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
])
def test_corrupt_header_names_the_file(tmp_path, content, problem):
    path = corrupt(tmp_path / "broken.safetensors", content)
    with pytest.raises(CheckpointError, match=f"broken.safetensors.*{problem}"):
        CheckpointReader(path)


def header_file(tmp_path, entry, data_bytes):
    raw = json.dumps({"w": entry}).encode()
    return corrupt(tmp_path / "entry.safetensors", struct.pack("<Q", len(raw)) + raw + bytes(data_bytes))


@pytest.mark.parametrize("entry, data_bytes, problem", [
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, 4, "do not fit"),
    ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, 8, "do not fit"),
    ({"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, 2, "unsupported dtype U8"),
    ({"dtype": "F32", "shape": [2]}, 8, "lacks"),
    ({"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}, 8, "malformed"),
])
def test_inconsistent_tensor_entry_is_rejected(tmp_path, entry, data_bytes, problem):
    with pytest.raises(CheckpointError, match=f"entry.safetensors.*{problem}"):
        CheckpointReader(header_file(tmp_path, entry, data_bytes))


def test_unknown_path_and_type(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        CheckpointReader(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="unknown checkpoint type"):
        CheckpointReader(corrupt(tmp_path / "weights.npz", b""))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        CheckpointReader(tmp_path / "empty")


def test_numpy_input_and_unsupported_dtype(tmp_path):
    path = write_safetensors(tmp_path / "np.safetensors", {"x": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert torch.equal(CheckpointReader(path).load("x"), torch.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="float64"):
        write_safetensors(tmp_path / "bad.safetensors", {"x": torch.zeros(2, dtype=torch.float64)})


def test_tensor_data_is_read_at_load_time_not_when_opening(tmp_path):
    path = write_safetensors(tmp_path / "lazy.safetensors", {"a": torch.zeros(2), "b": torch.zeros(2)})
    reader = CheckpointReader(path)
    data = bytearray(path.read_bytes())
    data[-8:] = np.array([3.0, 4.0], dtype="<f4").tobytes()  # "b" is stored last
    path.write_bytes(bytes(data))
    assert reader.load("b").tolist() == [3.0, 4.0]
