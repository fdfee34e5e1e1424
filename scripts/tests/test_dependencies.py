"""The model scripts check every third-party module before any work: one line naming the Debian packages, exit 8,
nothing written. A module is hidden by a package of the same name that fails to import, first on PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sora.dependencies import DEPENDENCY_EXIT, MODEL_TOOLING

SCRIPTS = Path(__file__).resolve().parents[1]


def hiding(tmp_path: Path, *modules: str) -> dict:
    shadow = tmp_path / "shadow"
    for module in modules:
        (shadow / module).mkdir(parents=True)
        (shadow / module / "__init__.py").write_text(f"raise ImportError({module + ' is hidden by the test'!r})\n")
    return {**os.environ, "PYTHONPATH": str(shadow)}


@pytest.mark.parametrize("script, extra", [
    ("make_synthetic_model.py", ["--depth", "1", "--hidden", "64"]),
    ("convert_checkpoint.py", ["--stdit", "s", "--t5", "t", "--vae", "v", "--tokenizer", "k"]),
])
@pytest.mark.parametrize("hidden", [("jsonschema",), ("onnx", "jsonschema")])
def test_a_missing_module_stops_the_script_before_any_work(tmp_path, script, extra, hidden):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(SCRIPTS / script), "--out", str(out), *extra],
                            env=hiding(tmp_path, *hidden), capture_output=True, text=True, timeout=300)
    assert result.returncode == DEPENDENCY_EXIT, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    debian = " ".join(f"python3-{module}" for module in hidden)
    assert lines[0].startswith(f"error: scripts/{script} needs Python modules: ")
    assert f"cannot import {', '.join(hidden)} (Debian/Ubuntu: apt-get install {debian}; or pip install" in lines[0]
    assert not out.exists()


def test_the_check_lists_every_third_party_module_the_scripts_import():
    assert [requirement.module for requirement in MODEL_TOOLING] == ["torch", "onnx", "numpy", "jsonschema"]


def test_run_python_tests_skips_with_the_reason(tmp_path):
    script = SCRIPTS / "run-python-tests.sh"
    result = subprocess.run(["bash", str(script)], env=hiding(tmp_path, "jsonschema"), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Python tests skipped: ")
    assert "cannot import jsonschema (Debian/Ubuntu: apt-get install python3-jsonschema" in result.stdout
