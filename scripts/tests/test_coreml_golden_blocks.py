"""scripts/coreml_golden_blocks.py: golden blocks converted to CoreML packages for the Mac self-check. Needs
coremltools, which Debian does not package: run with a venv's python (--system-site-packages, pip install
coremltools==8.3); elsewhere the test is skipped, saying so."""

import json

import pytest

coremltools = pytest.importorskip("coremltools", reason="coremltools not installed (pip install coremltools==8.3 in a venv)")

import coreml_golden_blocks  # noqa: E402


def test_converts_a_golden_block_and_reports_it(tmp_path):
    assert coreml_golden_blocks.main(["--out", str(tmp_path), "--blocks", "t5final-layer-norm"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == {"converted": {"t5final-layer-norm": "t5final-layer-norm.mlpackage"}, "failed": {}}
    spec = coremltools.utils.load_spec(str(tmp_path / "t5final-layer-norm.mlpackage"))
    assert spec.specificationVersion == 7  # macOS 13
    assert [feature.name for feature in spec.description.input] == ["input"]
    assert list(spec.description.input[0].type.multiArrayType.shape) == [1, 300, 64]
