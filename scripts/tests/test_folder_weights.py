"""Weights read back from an exported model folder: exporting them again gives the same weights, so fine-tuning
models/shapes starts from exactly the shipped model. Weights, not file bytes: the CoreML-friendly rewrites of the
STDiT and VAE blocks (test_coreml_friendly.py) changed their graphs' structure after models/shapes was exported, while
keeping every value."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx

from sora.onnx_export import export_units, model_units
from sora.shapes_training import modules_from_folder

SHAPES = Path(__file__).resolve().parents[2] / "models" / "shapes"
COMPONENTS = ("t5", "stdit", "vae")


def _weights(graph_file: Path) -> Counter:
    """Every initializer of a graph as (dtype, bytes), external data included, whatever its name or shape (in the
    temporal VAE's rewritten graphs some parameters have another shape)."""
    model = onnx.load(str(graph_file), load_external_data=True)
    return Counter(
        (t.data_type, onnx.numpy_helper.to_array(t).tobytes()) for t in model.graph.initializer
    )


def _graphs(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p for c in COMPONENTS for p in sorted((folder / c).glob("*.onnx"))}


def test_the_shipped_shapes_model_reexports_with_the_same_weights(tmp_path):
    t5, stdit, vae = modules_from_folder(SHAPES)
    export_units(model_units(t5, stdit, vae), tmp_path)
    exported, shipped = _graphs(tmp_path), _graphs(SHAPES)
    assert sorted(exported) == sorted(shipped)
    # Each shipped weight tensor is exported again, bit for bit (a rewrite may add constants of its own).
    missing = [name for name in shipped if _weights(shipped[name]) - _weights(exported[name])]
    assert missing == []
