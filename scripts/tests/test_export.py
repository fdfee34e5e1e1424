"""The exported blocks of models/tiny against the block contract (models/README.md), and the exporter itself.

The expected signatures below are the README table written out for the tiny sizes; symbolic axis names are the
wrappers' DYNAMIC_AXES (B, T, H, W, N, BL, M, A, Q) and vae_blocks.dynamic_axes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from sora.manifest import io_specs_from_onnx
from sora.onnx_export import (
    DATA_ALIGNMENT,
    OPSET,
    PRODUCER_NAME,
    ExportError,
    ExportUnit,
    export_unit,
    stdit_units,
    t5_units,
    vae_units,
)
from sora.tiny_model import build_tiny_modules
from sora.vae_blocks import dynamic_axes

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "tiny"
MANIFEST = json.loads((MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))
BLOCKS = {block["name"]: block for block in MANIFEST["blocks"]}
F32, I64 = "float32", "int64"


def _graph_path(block) -> Path:
    return MODEL_DIR / next(entry["path"] for entry in block["files"] if entry["role"] == "graph")


def _expected_io(block):
    """(inputs, outputs) as [name, dtype, shape] per models/README.md, or None for the VAE parts."""
    t5, stdit = MANIFEST["architecture"]["t5"], MANIFEST["architecture"]["stdit"]
    d, heads, c = t5["d_model"], t5["num_heads"], stdit["hidden_size"]
    cy, out_channels = stdit["caption_channels"], stdit["out_channels"]
    hidden = [1, 300, d]
    mask = ["attention_mask", F32, [1, 1, 1, 300]]
    latent = ["B", stdit["in_channels"], "T", "H", "W"]
    block_inputs = [
        ["x", F32, ["B", "N", c]], ["y", F32, [1, "M", c]], ["t_mlp", F32, ["B", 6 * c]],
        ["attn", F32, [1, "A", "Q", "M"]], ["T", I64, [1]],
    ]
    table = {
        "t5-embed": ([["input_ids", I64, [1, 300]]], [["output", F32, hidden]]),
        "t5-final-norm": ([["input", F32, hidden]], [["output", F32, hidden]]),
        "stdit-part1": (
            [
                ["z_in", F32, latent], ["t", F32, ["B"]], ["y", F32, ["B", 1, 300, cy]], ["mask", F32, [1, 300]],
                ["fps", F32, [1]], ["height", F32, [1]], ["width", F32, [1]], ["padH", I64, [1]], ["padW", I64, [1]],
            ],
            [
                ["x", F32, ["B", "N", c]], ["outY", F32, [1, "BL", c]], ["t_mlp", F32, ["B", 6 * c]],
                ["T", I64, [1]], ["outT", F32, ["B", c]],
            ],
        ),
        "stdit-st": (block_inputs, [["output", F32, ["B", "N", c]]]),
        "stdit-tdtm": (block_inputs, [["output", F32, ["B", "N", c]]]),
        "stdit-part2": (
            [
                ["z_in", F32, latent], ["x", F32, ["B", "N", c]], ["t", F32, ["B", c]],
                ["padH", I64, [1]], ["padW", I64, [1]],
            ],
            [["output", F32, ["B", out_channels, "T", "H", "W"]]],
        ),
    }
    if block["kind"] == "t5-layer" and block["index"] == 0:
        return (
            [["hidden_states", F32, hidden], mask, ["y_embedding", F32, [300, cy]]],
            [
                ["output_hidden_states", F32, hidden], ["output_position_bias", F32, [1, heads, 300, 300]],
                ["yNull", F32, [300, cy]],
            ],
        )
    if block["kind"] == "t5-layer":
        return (
            [["hidden_states", F32, hidden], mask, ["position_bias", F32, [1, heads, 300, 300]]],
            [["output_hidden_states", F32, hidden]],
        )
    return table.get(block["kind"])


def _as_lists(specs):
    return [[spec.name, spec.dtype, list(spec.shape)] for spec in specs]


def _external(graph_path: Path):
    model = onnx.load(str(graph_path), load_external_data=False)
    return {
        tensor.name: {entry.key: entry.value for entry in tensor.external_data}
        for tensor in model.graph.initializer
        if tensor.data_location == TensorProto.EXTERNAL
    }


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_signature_follows_the_contract(name):
    block = BLOCKS[name]
    graph = _graph_path(block)
    pair = re.fullmatch(r"stdit3_(?:ST|TDTM)_(\d+)", name)
    assert graph.name == (f"stdit3_block_{pair[1]}.onnx" if pair else f"{name}.onnx")
    assert graph.parent.name == block["component"]
    inputs, outputs = io_specs_from_onnx(graph)
    manifest_specs = [
        [[spec["name"], spec["dtype"], spec["shape"]] for spec in block[side]] for side in ("inputs", "outputs")
    ]
    assert [_as_lists(inputs), _as_lists(outputs)] == manifest_specs  # the manifest describes the graph
    expected = _expected_io(block)
    if expected is not None:
        assert (_as_lists(inputs), _as_lists(outputs)) == expected
        return
    axes = dynamic_axes(name)  # VAE parts: latents → output, declared axes symbolic, channels fixed
    for spec, declared in ((inputs, axes["latents"]), (outputs, axes["output"])):
        (only,) = spec
        symbolic = {axis: dim for axis, dim in enumerate(only.shape) if isinstance(dim, str)}
        assert only.dtype == F32 and symbolic == declared


def test_blocks_are_the_contract_set_in_pipeline_order():
    depth, layers = MANIFEST["architecture"]["stdit"]["depth"], MANIFEST["architecture"]["t5"]["num_layers"]
    names = [block["name"] for block in MANIFEST["blocks"]]
    t5_names = ["t5embed-tokens", *(f"t5block-layer{i}" for i in range(layers)), "t5final-layer-norm"]
    assert names[: layers + 2] == t5_names
    pairs = [name for i in range(depth) for name in (f"stdit3_ST_{i}", f"stdit3_TDTM_{i}")]
    assert names[layers + 2 : layers + 4 + 2 * depth] == ["stdit3_part1", *pairs, "stdit3_part2"]
    assert len(names) == layers + 4 + 2 * depth + 18


@pytest.mark.parametrize("name", list(BLOCKS))
def test_graph_is_valid_opset_17_with_fixed_producer(name):
    graph = _graph_path(BLOCKS[name])
    onnx.checker.check_model(str(graph))  # by path, so external data files are checked too
    model = onnx.load(str(graph), load_external_data=False)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    # A block pair's one graph is named after its ST block, the first of the two names it serves.
    assert (model.producer_name, model.graph.name) == (PRODUCER_NAME, name.replace("stdit3_TDTM_", "stdit3_ST_"))
    assert not model.doc_string and not any(node.doc_string for node in model.graph.node)


@pytest.mark.parametrize("index", range(MANIFEST["architecture"]["stdit"]["depth"]))
def test_st_and_tdtm_are_one_graph_with_one_weight_file(index):
    st, tdtm = BLOCKS[f"stdit3_ST_{index}"], BLOCKS[f"stdit3_TDTM_{index}"]
    shared = f"stdit/stdit3_block_{index}.data"
    assert st["files"] == tdtm["files"] == [
        {**st["files"][0], "path": f"stdit/stdit3_block_{index}.onnx", "role": "graph"},
        {**st["files"][1], "path": shared, "role": "weights"},
    ]
    users = [block["name"] for block in MANIFEST["blocks"] if any(entry["path"] == shared for entry in block["files"])]
    assert users == [st["name"], tdtm["name"]]
    external = _external(_graph_path(st))
    assert external
    size = (MODEL_DIR / shared).stat().st_size
    assert {entry["location"] for entry in external.values()} == {Path(shared).name}
    assert all(int(entry["offset"]) % DATA_ALIGNMENT == 0 for entry in external.values())
    assert max(int(entry["offset"]) + int(entry["length"]) for entry in external.values()) == size


def test_weights_are_named_after_checkpoint_keys():
    names = set(_external(_graph_path(BLOCKS["stdit3_ST_1"])))
    assert "spatial_blocks.1.attn.qkv.weight.T" in names  # a folded transpose keeps its source's name
    assert not [name for name in names if name.startswith("onnx::")]
    assert set(_external(_graph_path(BLOCKS["t5embed-tokens"]))) == {"shared.weight"}


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_modules()


def _initializers(path: Path):
    model = onnx.load(str(path))
    return model, {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}


def test_float16_stores_weights_as_float16_and_computes_in_float32(tiny, tmp_path):
    t5_layer = t5_units(tiny.t5, tiny.stdit.y_embedder.y_embedding)[2]
    units = [t5_layer, stdit_units(tiny.stdit)[1], vae_units(tiny.vae)[0]]
    for unit in units:
        specs32 = export_unit(unit, tmp_path / "f32")
        specs16 = export_unit(unit, tmp_path / "f16", "float16")
        for spec32, spec16 in zip(specs32, specs16):
            assert spec16.dtype == "float16"
            assert (spec16.inputs, spec16.outputs) == (spec32.inputs, spec32.outputs)  # I/O stays float32
            path16 = tmp_path / "f16" / spec16.files[0].path
            onnx.checker.check_model(str(path16))
            model16, weights16 = _initializers(path16)
            _, weights32 = _initializers(tmp_path / "f32" / spec32.files[0].path)
            halves = [name for name, value in weights16.items() if value.dtype == np.float16]
            assert halves and {node.input[0] for node in model16.graph.node if node.op_type == "Cast"} >= set(halves)
            for name in halves:
                np.testing.assert_array_equal(weights16[name], weights32[name].astype(np.float16))
        weights = [entry.path for entry in specs16[0].files if entry.role == "weights"]
        assert (tmp_path / "f16" / weights[0]).stat().st_size < (tmp_path / "f32" / weights[0]).stat().st_size


def test_blocks_with_different_weights_refuse_to_share_a_file(tiny, tmp_path):
    units = stdit_units(tiny.stdit, one_graph_per_pair=False)
    st_of_block_0, tdtm_of_block_1 = units[1].blocks[0], units[2].blocks[1]
    with pytest.raises(ExportError, match="cannot share a weight file"):
        export_unit(ExportUnit((st_of_block_0, tdtm_of_block_1), "stdit/mixed.data"), tmp_path)
