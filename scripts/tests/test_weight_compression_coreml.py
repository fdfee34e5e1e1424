"""int8 weights for CoreML packages (coremltools' linear_quantize_weights), converted here on Linux. Whether the
quantised package predicts as before needs macOS (CoreML's runtime), so only the package is checked: its ops read
int8 constants through a dequantising op, and its weight file shrinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora.manifest import block_spec_of, package_digest
from sora.weight_compression import CompressionError, _compress_package

ct = pytest.importorskip(
    "coremltools", reason="coremltools not installed: make .venv-coreml with scripts/coreml-venv.sh and run with it"
)

TINY_COREML = Path(__file__).resolve().parents[2] / "models" / "tiny-coreml"
WEIGHTS = "Data/com.apple.CoreML/weights/weight.bin"


def _block(name: str):
    import json

    manifest = json.loads((TINY_COREML / "manifest.json").read_text())
    return block_spec_of(next(entry for entry in manifest["blocks"] if entry["name"] == name))


def _op_types(package: Path) -> set:
    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    return {op.type for function in spec.mlProgram.functions.values() for block in function.block_specializations.values() for op in block.operations}


def test_an_int8_coreml_package_reads_int8_constants_and_is_smaller(tmp_path):
    block = _block("stdit3_ST_0")
    package = block.files[0].path
    digest = package_digest(TINY_COREML / package)
    _compress_package(TINY_COREML, tmp_path, block, "int8")
    assert package_digest(TINY_COREML / package) == digest  # coremltools opened a copy, not the source
    assert sorted(path.name for path in tmp_path.iterdir()) == [Path(package).parts[0]]  # no scratch left
    before = (TINY_COREML / package / WEIGHTS).stat().st_size
    after = (tmp_path / package / WEIGHTS).stat().st_size
    assert after < before * 0.6  # float16-computed block: float16 weights (2 bytes) become int8 (1) plus scales
    assert any(op.startswith("constexpr_") for op in _op_types(tmp_path / package))


def test_float16_is_refused_for_coreml_packages(tmp_path):
    with pytest.raises(CompressionError, match="CoreML package"):
        _compress_package(TINY_COREML, tmp_path, _block("stdit3_ST_0"), "float16")
