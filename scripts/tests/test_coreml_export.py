"""CoreML packages (sora/coreml_export.py): the shipped models/tiny-coreml and convert_checkpoint.py --format coreml.

Linux can convert but not run CoreML models, so these tests read what was written: each package's spec (input and
output names, data types, flexible shape ranges, specification version), its weights (float16 or float32 as the
manifest says), the block count against the contract, and byte-for-byte reproducibility. They need coremltools:
run them with .venv-coreml/bin/python (scripts/coreml-venv.sh makes it; scripts/run-python-tests.sh uses it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ct = pytest.importorskip(
    "coremltools", reason="coremltools not installed: make .venv-coreml with scripts/coreml-venv.sh and run with it"
)

from coremltools.proto import MIL_pb2, FeatureTypes_pb2, Model_pb2  # noqa: E402

import convert_checkpoint  # noqa: E402
from sora.coreml_export import (  # noqa: E402
    BLOCK_PRECISION,
    PACKAGE_SUFFIX,
    SPEC_PATH,
    CoreMLSettings,
    LatentBounds,
    compute_units,
    export_coreml_block,
    input_ranges,
)
from sora.folder_compare import compare_folders  # noqa: E402
from sora.manifest import PACKAGE_WEIGHTS, package_digest  # noqa: E402
from sora.onnx_export import model_units  # noqa: E402
from sora.tiny_model import DEFAULTS, build_tiny_modules  # noqa: E402
from test_convert import checkpoints, modules  # noqa: E402,F401  (fixtures: tiny upstream-format checkpoints)

ROOT = Path(__file__).resolve().parents[2]
TINY_COREML = ROOT / "models" / "tiny-coreml"
IOS15_SPEC_VERSION = 6
ARRAY_TYPES = {
    FeatureTypes_pb2.ArrayFeatureType.FLOAT32: "float32",
    FeatureTypes_pb2.ArrayFeatureType.INT32: "int32",
}


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _spec(package: Path) -> Model_pb2.Model:
    spec = Model_pb2.Model()
    spec.ParseFromString((package / SPEC_PATH).read_bytes())
    return spec


def _blocks_by_name(modules):
    units = model_units(modules.t5, modules.stdit, modules.vae, one_graph_per_pair=False)
    return {block.name: block for unit in units for block in unit.blocks}


def _ranges(feature) -> list:
    array = feature.type.multiArrayType
    if array.WhichOneof("ShapeFlexibility") == "shapeRange":
        return [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
    return [(size, size) for size in array.shape]


def _const_dtypes(spec) -> set:
    """Data types of the program's constants (weights and small values)."""
    dtypes = set()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                if op.type == "const":
                    dtypes.add(op.outputs[0].type.tensorType.dataType)
    return dtypes


@pytest.fixture(scope="module")
def shipped():
    return _manifest(TINY_COREML)


@pytest.fixture(scope="module")
def tiny_blocks(modules):  # noqa: F811
    return _blocks_by_name(modules)


def test_shipped_model_has_one_package_per_contract_block(shipped):
    arch = shipped["architecture"]
    expected = 1 + arch["t5"]["num_layers"] + 1 + 1 + 2 * arch["stdit"]["depth"] + 1 + 18
    packages = sorted(path.relative_to(TINY_COREML).as_posix() for path in TINY_COREML.glob(f"*/*{PACKAGE_SUFFIX}"))
    assert len(shipped["blocks"]) == expected == len(packages)
    assert sorted(entry["path"] for block in shipped["blocks"] for entry in block["files"]) == packages
    assert {block["format"] for block in shipped["blocks"]} == {"coreml"}


def test_shipped_specs_match_the_manifest_and_the_contract(shipped, tiny_blocks, modules):  # noqa: F811
    settings = CoreMLSettings(LatentBounds.from_defaults(DEFAULTS), modules.stdit.config.num_heads)
    for block in shipped["blocks"]:
        name = block["name"]
        export = tiny_blocks[name]
        spec = _spec(TINY_COREML / block["files"][0]["path"])
        assert spec.specificationVersion == IOS15_SPEC_VERSION, name
        description = spec.description
        assert [f.name for f in description.input] == [s["name"] for s in block["inputs"]] == list(export.input_names)
        assert [f.name for f in description.output] == [s["name"] for s in block["outputs"]] == list(export.output_names)
        for feature, declared in zip(description.input, block["inputs"]):
            assert ARRAY_TYPES[feature.type.multiArrayType.dataType] == declared["dtype"], (name, feature.name)
            expected = input_ranges(export, settings.bounds, settings.heads)[feature.name]
            for axis, (low, high) in enumerate(_ranges(feature)):
                size = declared["shape"][axis]
                if isinstance(size, str):
                    assert (low, high) == expected[axis][:2], (name, feature.name, axis)
                else:
                    assert low == high == size, (name, feature.name, axis)
        assert block["computeUnits"] == compute_units(name)
        assert block["dtype"] == BLOCK_PRECISION[block["kind"]]
        assert (MIL_pb2.DataType.FLOAT16 in _const_dtypes(spec)) == (block["dtype"] == "float16"), name


def test_shipped_packages_match_their_manifest_digests(shipped):
    for block in shipped["blocks"]:
        entry = block["files"][0]
        package = TINY_COREML / entry["path"]
        assert package_digest(package) == entry["sha256"], block["name"]
        weights = package / PACKAGE_WEIGHTS
        assert block["weightBytes"] == (weights.stat().st_size if weights.is_file() else 0)


@pytest.mark.parametrize("name", ["t5final-layer-norm", "stdit3_part2", "vae_spatial_part4"])
def test_conversion_reproduces_the_shipped_package(name, tiny_blocks, modules, tmp_path):  # noqa: F811
    settings = CoreMLSettings(LatentBounds.from_defaults(DEFAULTS), modules.stdit.config.num_heads)
    spec = export_coreml_block(tiny_blocks[name], tmp_path, settings)
    relative = spec.files[0].path
    assert compare_folders(TINY_COREML / relative, tmp_path / relative) == []


def test_converter_writes_coreml_packages_from_upstream_checkpoints(checkpoints, shipped, tmp_path):  # noqa: F811
    out = tmp_path / "converted"
    args = ["--stdit", checkpoints.stdit, "--t5", checkpoints.t5, "--vae", checkpoints.vae,
            "--tokenizer", checkpoints.tokenizer, "--out", out, "--name", "tiny", "--format", "coreml",
            "--config-stdit", "tiny", "--config-t5", "tiny", "--config-vae", "tiny"]
    assert convert_checkpoint.main([str(arg) for arg in args]) == 0
    manifest = _manifest(out)
    assert [b["name"] for b in manifest["blocks"]] == [b["name"] for b in shipped["blocks"]]
    for block, reference in zip(manifest["blocks"], shipped["blocks"]):
        # Same weights at the same precision: the weight files are identical (the flexible shapes' defaults differ,
        # as the converter's default video is the app's 68 frames).
        converted, committed = (folder / entry["files"][0]["path"] / PACKAGE_WEIGHTS for folder, entry in
                                ((out, block), (TINY_COREML, reference)))
        assert converted.is_file() == committed.is_file(), block["name"]
        if committed.is_file():
            assert converted.read_bytes() == committed.read_bytes(), block["name"]
        assert (block["computeUnits"], block["dtype"]) == (reference["computeUnits"], reference["dtype"])
    assert "CoreML packages" in manifest["description"]


def test_converter_names_the_missing_coremltools(checkpoints, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setitem(sys.modules, "coremltools", None)  # `import coremltools` now raises ImportError
    out = tmp_path / "converted"
    args = ["--stdit", checkpoints.stdit, "--t5", checkpoints.t5, "--vae", checkpoints.vae,
            "--tokenizer", checkpoints.tokenizer, "--out", out, "--format", "coreml",
            "--config-stdit", "tiny", "--config-t5", "tiny", "--config-vae", "tiny"]
    assert convert_checkpoint.main([str(arg) for arg in args]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pip install coremltools==8.3" in lines[0]
    assert not out.exists()
