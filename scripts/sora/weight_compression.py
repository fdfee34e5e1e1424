"""Weight-only compression of a model folder: the same blocks, graphs and contract, with smaller weight files.

`float16`: every float32 weight stored as float16 and read through a Cast back to float32 (sora.onnx_weights).
`int8`: every weight that is the matrix of a MatMul or Gemm or the kernel of a Conv stored as int8 with one float32
scale per output channel (symmetric: zero point 0, range ±127), read through a DequantizeLinear into that op; every
other weight (embeddings, positional tables, norms' large vectors) stored as float16 as above. Inputs, outputs and
every computation stay float32, so a compressed folder runs wherever the original does and `generate` needs no
change. Per output channel because a channel's scale then follows its own largest weight, which keeps the rounding
error of each output proportional to that output's size.

ONNX Runtime folds a Cast of a constant at load time (the session then holds float32 weights: fewer bytes read,
the same memory), but keeps a DequantizeLinear of a constant unfolded (its QDQ rules), so int8 weights stay int8 in
memory and are expanded per call.

CoreML packages (`format: coreml`) are quantised with coremltools (`ct.optimize.coreml.linear_quantize_weights`,
int8 per channel); converting works on Linux, running the result needs macOS. Their float16 storage is what
`models convert --format coreml` already writes for every block computed in float16, so `float16` refuses them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sora.jsonio import canonical_json_bytes
from sora.manifest import MANIFEST_NAME, BlockSpec, block_spec_of, describe_blocks, describe_files, validate_manifest
from sora.onnx_weights import (
    WeightStorageError,
    is_weight,
    point_to,
    prepend_nodes,
    rename_inputs,
    weights_of,
    weights_to_float16,
    write_weights,
)

SETTINGS = ("float16", "int8")
INT8_LIMIT = 127  # symmetric: -128 is never used, so a channel's range is the same on both sides of zero


class CompressionError(ValueError):
    """A folder that cannot be compressed as asked."""


# ============================================================================================
# int8: which weights, which axis
# ============================================================================================


def _output_channel_axis(node: onnx.NodeProto, position: int, rank: int) -> Optional[int]:
    """The axis of a weight's output channels for the op reading it at `position`; None when not a matrix/kernel."""
    if position != 1 or rank < 2:
        return None
    if node.op_type == "MatMul":
        return rank - 1  # x @ W: W is [..., K, N]
    if node.op_type == "Gemm" and rank == 2:
        trans_b = next((attribute.i for attribute in node.attribute if attribute.name == "transB"), 0)
        return 0 if trans_b else 1
    if node.op_type == "Conv":
        return 0  # [M, C/group, k...]
    return None


def int8_axes(model: onnx.ModelProto) -> Dict[str, int]:
    """Weight name → output-channel axis, for float32 weights that every reader takes as a matrix or kernel on the
    same axis."""
    weights = {tensor.name: tensor for tensor in model.graph.initializer if is_weight(tensor)}
    axes: Dict[str, Optional[int]] = {}
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            tensor = weights.get(name)
            if tensor is None or tensor.data_type != TensorProto.FLOAT:
                continue
            axis = _output_channel_axis(node, position, len(tensor.dims))
            axes[name] = axis if axes.get(name, axis) == axis else None
    return {name: axis for name, axis in axes.items() if axis is not None}


def quantize_per_channel(values: np.ndarray, axis: int) -> "tuple[np.ndarray, np.ndarray]":
    """(int8 values, float32 scale per channel along `axis`) with values ≈ q * scale."""
    others = tuple(dim for dim in range(values.ndim) if dim != axis)
    largest = np.abs(values).max(axis=others)
    scale = np.where(largest > 0, largest / INT8_LIMIT, 1.0).astype(np.float32)
    shape = [1] * values.ndim
    shape[axis] = -1
    quantized = np.clip(np.rint(values / scale.reshape(shape)), -INT8_LIMIT, INT8_LIMIT).astype(np.int8)
    return quantized, scale


def weights_to_int8(model: onnx.ModelProto, block: str) -> None:
    """int8 matrices and kernels through DequantizeLinear, float16 for the other weights (see module doc)."""
    axes = int8_axes(model)
    weights_to_float16(model, block, skip=list(axes))
    graph = model.graph
    renames = {}
    dequantize = []
    added = []
    for tensor in graph.initializer:
        if tensor.name not in axes:
            continue
        quantized, scale = quantize_per_channel(numpy_helper.to_array(tensor), axes[tensor.name])
        name = tensor.name
        tensor.CopyFrom(numpy_helper.from_array(quantized, name))
        added += [numpy_helper.from_array(scale, f"{name}.scale"), numpy_helper.from_array(np.zeros_like(scale, np.int8), f"{name}.zero")]
        renames[name] = f"{name}.float32"
        dequantize.append(helper.make_node(
            "DequantizeLinear", [name, f"{name}.scale", f"{name}.zero"], [renames[name]], f"DequantizeLinear.{name}",
            axis=axes[name],
        ))
    graph.initializer.extend(added)
    rename_inputs(graph, renames)
    prepend_nodes(graph, dequantize)
    onnx.checker.check_model(model)


def compress_graph(model: onnx.ModelProto, block: str, setting: str) -> None:
    if setting == "float16":
        weights_to_float16(model, block)
    else:
        weights_to_int8(model, block)


# ============================================================================================
# a folder
# ============================================================================================


@dataclass(frozen=True)
class Unit:
    """Blocks whose graphs read one weight file (a block pair's ST and TDTM), or one block with its own."""

    weights: Optional[str]
    blocks: List[BlockSpec]


def _path_of(block: BlockSpec, role: str) -> Optional[str]:
    return next((item.path for item in block.files if item.role == role), None)


def _units(blocks: Sequence[BlockSpec]) -> List[Unit]:
    units: Dict[str, Unit] = {}
    for block in blocks:
        weights = _path_of(block, "weights")
        key = weights if weights is not None else f"graph:{block.name}"
        units.setdefault(key, Unit(weights, [])).blocks.append(block)
    return list(units.values())


def _same_weights(first: Sequence[TensorProto], other: Sequence[TensorProto]) -> bool:
    return [(t.name, t.data_type, list(t.dims), t.raw_data) for t in first] == [
        (t.name, t.data_type, list(t.dims), t.raw_data) for t in other
    ]


def _read_graph(path: Path) -> onnx.ModelProto:
    """The graph with its external data (read from beside it)."""
    try:
        return onnx.load(str(path))
    except Exception as error:  # protobuf's DecodeError, a missing or short data file: all mean a damaged folder
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CompressionError(f"{path}: cannot read the ONNX graph and its weights ({reason})") from error


def _compress_unit(source: Path, out: Path, unit: Unit, setting: str) -> None:
    # Blocks naming one graph (an exported block pair's ST and TDTM) have it compressed once.
    by_graph: Dict[Optional[str], BlockSpec] = {}
    for block in unit.blocks:
        by_graph.setdefault(_path_of(block, "graph"), block)
    graphs, blocks = list(by_graph), list(by_graph.values())
    models = [_read_graph(source / graph) for graph in graphs]
    for model, block in zip(models, blocks):
        compress_graph(model, block.name, setting)
    layout: Mapping[str, "tuple[int, int]"] = {}
    if unit.weights is not None:
        weights = weights_of(models[0])
        for model, block in zip(models[1:], blocks[1:]):
            if not _same_weights(weights, weights_of(model)):
                raise CompressionError(f"{blocks[0].name} and {block.name} share {unit.weights} but their "
                                       "compressed weights differ")
        (out / unit.weights).parent.mkdir(parents=True, exist_ok=True)
        layout = write_weights(out / unit.weights, weights)
    for model, graph in zip(models, graphs):
        graph_path = out / graph
        graph_path.parent.mkdir(parents=True, exist_ok=True)
        if unit.weights is not None:
            point_to(model, Path(unit.weights).relative_to(Path(graph).parent).as_posix(), layout)
        graph_path.write_bytes(model.SerializeToString())


def _compress_package(source: Path, out: Path, block: BlockSpec, setting: str) -> None:
    if setting != "int8":
        raise CompressionError(
            f"block {block.name} is a CoreML package: float16 weights are what `models convert --format coreml` "
            "writes for blocks computed in float16; compress it with --weights int8"
        )
    from sora.coreml_export import import_coremltools  # only CoreML folders need coremltools

    ct = import_coremltools()
    package = _path_of(block, "graph")
    config = ct.optimize.coreml.OptimizationConfig(
        global_config=ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    )
    # coremltools rewrites an .mlpackage's Manifest.json when it opens one, so it opens a copy: the source stays as it was.
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        copy = Path(scratch) / Path(package).name
        shutil.copytree(source / package, copy)
        quantized = ct.optimize.coreml.linear_quantize_weights(ct.models.MLModel(str(copy), skip_model_load=True), config=config)
        (out / package).parent.mkdir(parents=True, exist_ok=True)
        quantized.save(str(out / package))


def _copy_other_files(source: Path, out: Path, manifest: Mapping, block_files: "set[str]") -> None:
    """Tokenizer files and the folder's other top-level files (a world description), unchanged."""
    paths = {entry["path"] for entry in manifest["tokenizer"]["files"]}
    paths |= {p.name for p in source.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST_NAME}
    for relative in sorted(paths - block_files):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, out / relative)


def _description(text: str, setting: str) -> str:
    how = "float16" if setting == "float16" else "int8 per output channel (matrices and kernels), float16 otherwise"
    return f"{text} Weights stored as {how}, computed in float32 (ondevice-sora models compress).".strip()


def compress_folder(source: Path, out: Path, setting: str, on_unit=lambda index, total, names: None) -> Dict:
    """Writes the compressed copy of `source` into `out` (which must not exist) and returns its manifest."""
    if setting not in SETTINGS:
        raise CompressionError(f"--weights {setting!r} is not one of {', '.join(SETTINGS)}")
    manifest = json.loads((source / MANIFEST_NAME).read_text(encoding="utf-8"))
    blocks = [block_spec_of(entry) for entry in manifest["blocks"]]
    stored = {block.dtype for block in blocks if block.format == "onnx"} - {"float32"}
    if stored:
        raise CompressionError(f"{source}: its weights are already stored as {', '.join(sorted(stored))}; "
                               "compress a float32 folder")
    out.mkdir(parents=True)
    packages = [block for block in blocks if block.format == "coreml"]
    units = _units([block for block in blocks if block.format == "onnx"])
    total = len(units) + len(packages)
    for index, unit in enumerate(units, 1):
        try:
            _compress_unit(source, out, unit, setting)
        except WeightStorageError as error:
            raise CompressionError(str(error)) from error
        on_unit(index, total, [block.name for block in unit.blocks])
    for index, block in enumerate(packages, len(units) + 1):
        _compress_package(source, out, block, setting)
        on_unit(index, total, [block.name])
    _copy_other_files(source, out, manifest, {item.path for block in blocks for item in block.files})
    # An ONNX block records how its weights are stored; a CoreML block's dtype is its compute precision and stays.
    compressed = [replace(block, dtype=setting) if block.format == "onnx" else block for block in blocks]
    manifest = dict(manifest, description=_description(manifest["description"], setting))
    manifest["blocks"] = describe_blocks(out, compressed)
    paths = [entry["path"] for entry in manifest["tokenizer"]["files"]]
    manifest["tokenizer"] = dict(manifest["tokenizer"], files=describe_files(out, paths))
    validate_manifest(manifest)
    (out / MANIFEST_NAME).write_bytes(canonical_json_bytes(manifest))
    return manifest

