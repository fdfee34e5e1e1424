"""Weights read back from an exported model folder: exporting them again gives the same bytes, so fine-tuning
models/shapes starts from exactly the shipped model."""

from __future__ import annotations

from pathlib import Path

from sora.folder_compare import folder_files
from sora.onnx_export import export_units, model_units
from sora.shapes_training import modules_from_folder

SHAPES = Path(__file__).resolve().parents[2] / "models" / "shapes"


def test_the_shipped_shapes_model_reexports_byte_for_byte(tmp_path):
    t5, stdit, vae = modules_from_folder(SHAPES)
    export_units(model_units(t5, stdit, vae), tmp_path)
    exported = folder_files(tmp_path)
    shipped = folder_files(SHAPES)
    assert exported.keys() <= shipped.keys()
    assert len(exported) == len([name for name in shipped if name.split("/")[0] in ("t5", "stdit", "vae")])
    assert [name for name, data in exported.items() if shipped[name] != data] == []
