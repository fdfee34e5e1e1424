"""Weight-only compression (sora.weight_compression): which weights become int8 and on which axis, how close the
stored values are, and that a compressed copy of models/tiny keeps its blocks and shares its weight files. That
the compressed folder generates, and how close its frames are, is tested with ONNX Runtime in
test/models-compress.test.ts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sora.manifest import validate_manifest
from sora.weight_compression import CompressionError, compress_folder, int8_axes, quantize_per_channel

TINY = Path(__file__).resolve().parents[2] / "models" / "tiny"


def _graph_with(nodes, initializers):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None) for node in nodes],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_int8_axes_are_the_output_channels_of_matmul_gemm_and_conv_only():
    rng = np.random.default_rng(0)
    weights = {name: rng.standard_normal((32, 16)).astype(np.float32) for name in ("mm", "gemm_t", "gemm", "shared", "add")}
    weights["kernel"] = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "mm"], ["y1"]),
        helper.make_node("Gemm", ["x", "gemm_t"], ["y2"], transB=1),
        helper.make_node("Gemm", ["x", "gemm"], ["y3"]),
        helper.make_node("MatMul", ["x", "shared"], ["y4"]),
        helper.make_node("Add", ["x", "shared"], ["y5"]),  # read as a matrix and as an addend: no single axis
        helper.make_node("Add", ["x", "add"], ["y6"]),
        helper.make_node("Conv", ["x", "kernel"], ["y7"]),
    ]
    assert int8_axes(_graph_with(nodes, weights)) == {"mm": 1, "gemm_t": 0, "gemm": 1, "kernel": 0}


def test_per_channel_int8_is_within_half_a_step_of_each_channel_and_keeps_zero_channels():
    rng = np.random.default_rng(1)
    values = rng.standard_normal((64, 48)).astype(np.float32) * np.linspace(0.01, 10, 48, dtype=np.float32)
    values[:, 5] = 0
    quantized, scale = quantize_per_channel(values, axis=1)
    assert quantized.dtype == np.int8 and scale.shape == (48,)
    assert np.abs(quantized).max() <= 127
    np.testing.assert_allclose(scale[6:], np.abs(values[:, 6:]).max(axis=0) / 127, rtol=1e-6)
    error = np.abs(quantized * scale - values)
    assert np.all(error <= scale / 2 + 1e-7)  # rounding only, per channel: small channels keep small errors
    assert np.all(quantized[:, 5] == 0)


def _initializers(graph_file: Path):
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in onnx.load(str(graph_file)).graph.initializer}


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    root = tmp_path_factory.mktemp("compressed")
    return {setting: (compress_folder(TINY, root / setting, setting), root / setting) for setting in ("float16", "int8")}


@pytest.mark.parametrize("setting", ["float16", "int8"])
def test_a_compressed_tiny_model_keeps_its_blocks_and_their_pair_sharing(compressed, setting):
    manifest, folder = compressed[setting]
    original = json.loads((TINY / "manifest.json").read_text())
    validate_manifest(manifest)
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert [(b["name"], b["inputs"], b["outputs"]) for b in manifest["blocks"]] == [
        (b["name"], b["inputs"], b["outputs"]) for b in original["blocks"]
    ]
    assert {b["dtype"] for b in manifest["blocks"]} == {setting}
    assert manifest["tokenizer"] == original["tokenizer"]
    pair = [b for b in manifest["blocks"] if b["name"] in ("stdit3_ST_0", "stdit3_TDTM_0")]
    assert len({next(f["path"] for f in b["files"] if f["role"] == "weights") for b in pair}) == 1
    assert sum(b["weightBytes"] for b in manifest["blocks"]) < sum(b["weightBytes"] for b in original["blocks"]) * (
        0.55 if setting == "float16" else 0.35
    )


def test_float16_weights_are_the_float32_weights_rounded(compressed):
    _, folder = compressed["float16"]
    before = _initializers(TINY / "stdit" / "stdit3_block_1.onnx")
    after = _initializers(folder / "stdit" / "stdit3_block_1.onnx")
    weights = [name for name, value in before.items() if value.size >= 256]
    assert weights
    for name in weights:
        assert after[name].dtype == np.float16
        np.testing.assert_array_equal(after[name], before[name].astype(np.float16))


def test_int8_weights_dequantize_to_within_half_a_step_of_the_float32_weights(compressed):
    _, folder = compressed["int8"]
    for graph in ("stdit/stdit3_block_1.onnx", "vae/vae_temporal_part1.onnx"):
        model = onnx.load(str(folder / graph))
        before = _initializers(TINY / graph)
        after = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
        dequantized = {node.input[0]: node.attribute[0].i for node in model.graph.node if node.op_type == "DequantizeLinear"}
        assert dequantized, graph
        for name, axis in dequantized.items():
            shape = [1] * after[name].ndim
            shape[axis] = -1
            scale = after[f"{name}.scale"].reshape(shape)
            assert after[name].dtype == np.int8
            assert np.all(np.abs(after[name] * scale - before[name]) <= scale / 2 + 1e-6), name


def test_compressing_refuses_an_existing_output_and_a_compressed_source(compressed, tmp_path):
    _, folder = compressed["float16"]
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        compress_folder(TINY, tmp_path / "taken", "int8")
    with pytest.raises(CompressionError, match="already stored as float16"):
        compress_folder(folder, tmp_path / "again", "int8")
    with pytest.raises(CompressionError, match="not one of"):
        compress_folder(TINY, tmp_path / "int4", "int4")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken"]
