"""How a model folder's ONNX weights are stored: which initializers count as weights, float16 storage read through
a Cast, and the shared external-data files they are written to. No torch, so the compressor
(scripts/compress_model.py) runs with onnx and numpy alone.

Every initializer of at least EXTERNAL_MIN_ELEMENTS elements is a weight (small shape constants stay inline in the
graph). Weights go to a `.data` file at DATA_ALIGNMENT-aligned offsets, so that a runtime can memory-map them page
by page; graphs that hold the same weights (a block pair's ST and TDTM graphs) point into one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EXTERNAL_MIN_ELEMENTS = 256
DATA_ALIGNMENT = 4096
FLOAT16_MAX = float(np.finfo(np.float16).max)


class WeightStorageError(ValueError):
    """Weights that cannot be stored as asked (out of float16 range, not raw bytes)."""


def element_count(tensor: TensorProto) -> int:
    return int(np.prod(tensor.dims, dtype=np.int64))


def is_weight(tensor: TensorProto) -> bool:
    return element_count(tensor) >= EXTERNAL_MIN_ELEMENTS


def weights_of(model: onnx.ModelProto) -> List[TensorProto]:
    return [tensor for tensor in model.graph.initializer if is_weight(tensor)]


def rename_inputs(graph: onnx.GraphProto, renames: Mapping[str, str]) -> None:
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name in renames:
                node.input[position] = renames[name]


def prepend_nodes(graph: onnx.GraphProto, nodes: Sequence[onnx.NodeProto]) -> None:
    """Puts `nodes` (which read only initializers) first, keeping the graph topologically sorted."""
    ordered = list(nodes) + list(graph.node)
    graph.ClearField("node")
    graph.node.extend(ordered)


def fits_float16(values: np.ndarray) -> bool:
    return values.size == 0 or float(np.abs(values).max()) <= FLOAT16_MAX


def weights_to_float16(model: onnx.ModelProto, block: str, skip: Sequence[str] = ()) -> None:
    """Stores float32 weights (all but `skip`) as float16, each read through a Cast back to float32, so every
    computation, input and output stays float32."""
    graph = model.graph
    casts = []
    renames = {}
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or not is_weight(tensor) or tensor.name in skip:
            continue
        values = numpy_helper.to_array(tensor)
        if not fits_float16(values):
            raise WeightStorageError(f"{block}: weight {tensor.name!r} exceeds the float16 range")
        tensor.CopyFrom(numpy_helper.from_array(values.astype(np.float16), tensor.name))
        renames[tensor.name] = f"{tensor.name}.float32"
        casts.append(
            helper.make_node("Cast", [tensor.name], [renames[tensor.name]], f"Cast.{tensor.name}", to=TensorProto.FLOAT)
        )
    rename_inputs(graph, renames)
    prepend_nodes(graph, casts)
    onnx.checker.check_model(model)


def write_weights(path: Path, tensors: Sequence[TensorProto]) -> Dict[str, Tuple[int, int]]:
    """Writes the tensors' raw little-endian bytes at aligned offsets; returns name → (offset, length)."""
    layout = {}
    with path.open("wb") as handle:
        for tensor in tensors:
            if not tensor.HasField("raw_data"):
                raise WeightStorageError(f"weight {tensor.name!r} is not stored as raw bytes")
            data = tensor.raw_data  # ONNX raw_data is little-endian, as external data must be
            offset = -(-handle.tell() // DATA_ALIGNMENT) * DATA_ALIGNMENT
            handle.write(b"\0" * (offset - handle.tell()))
            handle.write(data)
            layout[tensor.name] = (offset, len(data))
    return layout


def point_to(model: onnx.ModelProto, location: str, layout: Mapping[str, Tuple[int, int]]) -> None:
    """Makes the initializers named in `layout` external data at their offsets in `location` (graph-relative)."""
    for tensor in model.graph.initializer:
        if tensor.name not in layout:
            continue
        offset, length = layout[tensor.name]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        tensor.ClearField("external_data")
        for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
