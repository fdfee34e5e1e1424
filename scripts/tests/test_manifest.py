import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sora.manifest import (
    DEFAULT_SCHEMA_PATH,
    BlockFile,
    BlockSpec,
    Defaults,
    ManifestError,
    TensorSpec,
    build_manifest,
    io_specs_from_onnx,
    validate_manifest,
    write_manifest,
)
from sora.tokenizer_builder import write_tokenizer


@dataclass(frozen=True)
class FakeSpatial:
    block_out_channels: Tuple[int, ...] = (8, 16)
    norm_eps: float = 1e-6


@dataclass(frozen=True)
class FakeVAE:
    name: str = "tiny"
    spatial: FakeSpatial = FakeSpatial()


@dataclass(frozen=True)
class FakeSTDiT:
    depth: int = 1
    hidden_size: int = 4
    num_heads: int = 2


@dataclass(frozen=True)
class FakeT5:
    d_model: int = 4
    num_layers: int = 1
    num_heads: int = 2


def matmul_model(weight):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, "N", 4])
    steps = helper.make_tensor_value_info("T", TensorProto.INT64, [1])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, "N", 4])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["output"])]
    graph = helper.make_graph(nodes, "g", [x, steps], [out], initializer=[numpy_helper.from_array(weight, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def make_model_folder(root):
    """A miniature model folder: one graph with embedded weights, ST/TDTM graphs sharing one external weight file."""
    write_tokenizer(root)
    weight = np.arange(16, dtype=np.float32).reshape(4, 4)
    onnx.save(matmul_model(weight), str(root / "t5embed-tokens.onnx"))
    (root / "stdit").mkdir()
    onnx.save_model(matmul_model(weight), str(root / "stdit" / "stdit3_ST_0.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="stdit3_block_0.data", size_threshold=0)
    tdtm = onnx.load(str(root / "stdit" / "stdit3_ST_0.onnx"), load_external_data=False)
    tdtm.graph.name = "tdtm"
    onnx.save(tdtm, str(root / "stdit" / "stdit3_TDTM_0.onnx"))
    return weight.nbytes


def block(name, kind, component, files, index=0):
    io = (TensorSpec("x", "float32", (2, "N", 4)), TensorSpec("T", "int64", (1,)))
    return BlockSpec(name, component, kind, index, tuple(files), io, (TensorSpec("output", "float32", (2, "N", 4)),))


def blocks():
    weights = BlockFile("stdit/stdit3_block_0.data", "weights")
    return [
        block("t5embed-tokens", "t5-embed", "t5", [BlockFile("t5embed-tokens.onnx", "graph")]),
        block("stdit3_ST_0", "stdit-st", "stdit", [BlockFile("stdit/stdit3_ST_0.onnx", "graph"), weights]),
        block("stdit3_TDTM_0", "stdit-tdtm", "stdit", [BlockFile("stdit/stdit3_TDTM_0.onnx", "graph"), weights]),
    ]


def build(root, name="tiny", stdit=FakeSTDiT(), block_list=None):
    return build_manifest(root, name=name, description="test model", t5=FakeT5(), stdit=stdit, vae=FakeVAE(),
                          blocks=blocks() if block_list is None else block_list)


@pytest.fixture
def folder(tmp_path):
    make_model_folder(tmp_path)
    return tmp_path


def test_manifest_content(folder):
    manifest = build(folder)
    assert manifest["format"] == "ondevice-sora-model" and manifest["formatVersion"] == 1
    spatial = {"block_out_channels": [8, 16], "norm_eps": 1e-6}
    assert manifest["architecture"]["vae"] == {"name": "tiny", "spatial": spatial}
    assert manifest["architecture"]["t5"] == {"d_model": 4, "num_layers": 1, "num_heads": 2}
    assert manifest["defaults"] == {
        "steps": 30, "cfgScale": 7.0, "fps": 24, "aestheticScore": 6.5, "resolution": "256x256",
        "numFrames": 17, "resolutions": ["256x256"], "numFramesChoices": [17, 34, 51, 68],
    }
    tokenizer = manifest["tokenizer"]
    assert [f["path"] for f in tokenizer["files"]] == ["tokenizer.json", "tokenizer_config.json"]
    assert (tokenizer["maxLength"], tokenizer["padId"], tokenizer["eosId"]) == (300, 0, 1)
    assert [b["name"] for b in manifest["blocks"]] == ["t5embed-tokens", "stdit3_ST_0", "stdit3_TDTM_0"]
    st = manifest["blocks"][1]
    assert st["inputs"][0] == {"name": "x", "dtype": "float32", "shape": [2, "N", 4]}
    for entry in st["files"]:
        data = (folder / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_weight_bytes_count_embedded_and_external_weights_once_per_block(folder):
    manifest = build(folder)
    embed, st, tdtm = manifest["blocks"]
    assert embed["weightBytes"] == 64  # the 4x4 float32 initializer inside the graph
    assert st["weightBytes"] == tdtm["weightBytes"] == (folder / "stdit" / "stdit3_block_0.data").stat().st_size == 64
    assert st["files"][1] == tdtm["files"][1]


def test_written_bytes_are_canonical_and_identical_on_rerun(folder):
    path = write_manifest(folder, build(folder))
    first = path.read_bytes()
    assert first.endswith(b"}\n") and b'\n  "architecture": {' in first
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True).encode() + b"\n"
    write_manifest(folder, build(folder))
    assert path.read_bytes() == first


def test_refuses_to_overwrite_a_different_model(folder):
    write_manifest(folder, build(folder))
    with pytest.raises(ManifestError, match="different model.*run again with --overwrite to replace it"):
        write_manifest(folder, build(folder, name="other"))
    with pytest.raises(ManifestError, match="different model"):
        write_manifest(folder, build(folder, stdit=FakeSTDiT(depth=2)))
    write_manifest(folder, build(folder, name="other"), overwrite=True)
    assert json.loads((folder / "manifest.json").read_text())["name"] == "other"


def test_unreadable_existing_manifest_is_not_replaced_silently(folder):
    (folder / "manifest.json").write_text("{ not json")
    with pytest.raises(ManifestError, match="cannot be read"):
        write_manifest(folder, build(folder))


@pytest.mark.parametrize("path, problem", [
    ("../outside.onnx", "relative to the model folder"),
    ("/etc/passwd", "relative to the model folder"),
    ("missing.onnx", "does not exist"),
])
def test_file_paths_must_stay_inside_and_exist(folder, path, problem):
    with pytest.raises(ManifestError, match=problem):
        build(folder, block_list=[block("t5embed-tokens", "t5-embed", "t5", [BlockFile(path, "graph")])])


def test_graph_external_data_must_match_listed_weights(folder):
    graph_only = block("stdit3_ST_0", "stdit-st", "stdit", [BlockFile("stdit/stdit3_ST_0.onnx", "graph")])
    with pytest.raises(ManifestError, match="external data"):
        build(folder, block_list=[graph_only])
    two_graphs = block("x", "t5-embed", "t5", [BlockFile("t5embed-tokens.onnx", "graph")] * 2)
    with pytest.raises(ManifestError, match="exactly one file with role 'graph'"):
        build(folder, block_list=[two_graphs])


@pytest.mark.parametrize("mutate, problem", [
    (lambda m: m["blocks"][0].update(kind="t5-other"), "/blocks/0/kind: 't5-other' is not one of"),
    (lambda m: m["blocks"][1]["files"][0].update(role="code"), "/blocks/1/files/0/role"),
    (lambda m: m.update(formatVersion=2), "/formatVersion"),
    (lambda m: m["architecture"]["stdit"].pop("hidden_size"), "'hidden_size' is a required property"),
    (lambda m: m["blocks"][0].update(component="vae"), "component 'vae' does not match kind 't5-embed'"),
    (lambda m: m["blocks"].append(copy.deepcopy(m["blocks"][1])), "duplicate block names"),
    (lambda m: m["defaults"].update(numFrames=20), "numFrames 20 is not one of"),
    (lambda m: m["defaults"].update(resolution="64x64"), "resolution '64x64' is not one of"),
    # Every number has a bound (src/model/limits.ts), carried here by the generated schema.
    (lambda m: m["tokenizer"].update(maxLength=10**9), "/tokenizer/maxLength: 1000000000 is greater than"),
    (lambda m: m["blocks"][0].update(weightBytes=10**15), "/blocks/0/weightBytes: 1000000000000000 is greater"),
    (lambda m: m["blocks"][0]["inputs"][0].update(shape=[1, 10**15]), "/blocks/0/inputs/0/shape/1"),
    (lambda m: m["blocks"][0]["inputs"][0].update(shape=[2**16, 2**16, 2]), "holds more than 2147483648 elements"),
    (lambda m: m["defaults"].update(resolution="99999984x16", resolutions=["99999984x16"]), "/defaults/resolution"),
    (lambda m: m["defaults"].update(steps=99999999999), "/defaults/steps"),
    (lambda m: m["architecture"]["t5"].update(d_model=10**7), "/architecture/t5/d_model"),
    (lambda m: m["blocks"][0].update(computeUnits="gpu"), "/blocks/0/computeUnits: 'gpu' is not one of"),
])
def test_schema_and_cross_field_validation(folder, mutate, problem):
    manifest = build(folder)
    mutate(manifest)
    with pytest.raises(ManifestError, match=problem):
        validate_manifest(manifest)


def test_compute_units_per_block_are_written_and_checked(folder):
    listed = blocks()
    listed[1] = dataclasses.replace(listed[1], compute_units="cpu-gpu")
    manifest = build(folder, block_list=listed)
    validate_manifest(manifest)
    assert [b.get("computeUnits") for b in manifest["blocks"]] == [None, "cpu-gpu", None]
    listed[2] = dataclasses.replace(listed[2], compute_units="gpu")
    with pytest.raises(ManifestError, match="block stdit3_TDTM_0: compute_units 'gpu' is not one of all, cpu, cpu-gpu, cpu-ane"):
        build(folder, block_list=listed)


def test_custom_schema_path_is_applied(folder, tmp_path_factory):
    schema_path = tmp_path_factory.mktemp("schema") / "manifest.schema.json"
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"name": {"const": "tiny"}}, "required": ["name", "blocks"]}
    schema_path.write_text(json.dumps(schema))
    validate_manifest(build(folder), schema_path)
    with pytest.raises(ManifestError, match="manifest.schema.json: /name"):
        write_manifest(folder, build(folder, name="other"), schema_path=schema_path)


def test_validation_uses_the_generated_schema_and_requires_it(folder, tmp_path_factory):
    assert DEFAULT_SCHEMA_PATH.name == "manifest.schema.json" and DEFAULT_SCHEMA_PATH.is_file()
    validate_manifest(build(folder), DEFAULT_SCHEMA_PATH)
    missing = tmp_path_factory.mktemp("none") / "manifest.schema.json"
    with pytest.raises(ManifestError, match="schema missing.*npm run schema"):
        validate_manifest(build(folder), missing)


def test_io_specs_from_onnx_keep_dynamic_axis_names(folder):
    inputs, outputs = io_specs_from_onnx(folder / "stdit" / "stdit3_ST_0.onnx")
    assert inputs == (TensorSpec("x", "float32", (2, "N", 4)), TensorSpec("T", "int64", (1,)))
    assert outputs == (TensorSpec("output", "float32", (2, "N", 4)),)


def test_custom_defaults(folder):
    defaults = Defaults(resolution="192x192", resolutions=("192x192", "256x256"), num_frames=68)
    manifest = build_manifest(folder, name="tiny", description="", t5=FakeT5(), stdit=FakeSTDiT(), vae=FakeVAE(),
                              blocks=blocks(), defaults=defaults)
    validate_manifest(manifest)
    assert manifest["defaults"]["resolutions"] == ["192x192", "256x256"]
