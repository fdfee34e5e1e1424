"""Golden test data: block inputs and reference outputs as JSON, read by the TypeScript parity tests.

Layout: `{"block": name, "inputs": {name: tensor}, "outputs": {name: tensor}, "meta": {...}}` where a tensor is
`{"dtype": "float32" | "int64", "shape": [...], "data": base64 of the little-endian bytes}`. Raw bytes in base64
keep float32 values exact (decimal text would need 9 digits per value and invite rounding differences) and are
trivial to decode into a typed array in TypeScript.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch

from sora.jsonio import canonical_json_bytes

STORED_DTYPES = {"float32": np.dtype("<f4"), "int64": np.dtype("<i8")}
ArrayLike = Union[np.ndarray, torch.Tensor]


class GoldenFormatError(ValueError):
    """A golden file or tensor entry that does not follow the format."""


@dataclass
class Golden:
    block: str
    inputs: Dict[str, np.ndarray]
    outputs: Dict[str, np.ndarray]
    meta: Dict[str, Any] = field(default_factory=dict)


def _as_numpy(value: ArrayLike) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def encode_tensor(value: ArrayLike) -> dict:
    """Only float32 and int64 are accepted, so a silently widened or narrowed tensor cannot slip into a fixture."""
    array = _as_numpy(value)
    if array.dtype.name not in STORED_DTYPES:
        raise GoldenFormatError(f"golden tensors must be float32 or int64, got {array.dtype}")
    little_endian = np.ascontiguousarray(array, dtype=STORED_DTYPES[array.dtype.name])
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "data": base64.b64encode(little_endian.tobytes()).decode("ascii"),
    }


def decode_tensor(entry: Mapping[str, Any], name: str = "tensor") -> np.ndarray:
    if not isinstance(entry, Mapping) or {"dtype", "shape", "data"} - entry.keys():
        raise GoldenFormatError(f"{name}: expected an object with dtype, shape and data")
    if entry["dtype"] not in STORED_DTYPES:
        raise GoldenFormatError(f"{name}: unsupported dtype {entry['dtype']!r}")
    try:
        raw = base64.b64decode(entry["data"], validate=True)
    except (binascii.Error, TypeError) as error:
        raise GoldenFormatError(f"{name}: data is not base64 ({error})") from error
    storage = STORED_DTYPES[entry["dtype"]]
    shape = tuple(entry["shape"])
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * storage.itemsize:
        raise GoldenFormatError(f"{name}: {len(raw)} data bytes do not match shape {list(shape)} {entry['dtype']}")
    return np.frombuffer(raw, dtype=storage).reshape(shape).astype(storage.newbyteorder("="))


def _encode_group(tensors: Mapping[str, ArrayLike]) -> Dict[str, dict]:
    return {name: encode_tensor(value) for name, value in tensors.items()}


def golden_bytes(
    block: str,
    inputs: Mapping[str, ArrayLike],
    outputs: Mapping[str, ArrayLike],
    meta: Optional[Mapping[str, Any]] = None,
) -> bytes:
    document: Dict[str, Any] = {"block": block, "inputs": _encode_group(inputs), "outputs": _encode_group(outputs)}
    if meta:
        document["meta"] = dict(meta)
    return canonical_json_bytes(document)


def write_golden(
    path: Union[str, Path],
    block: str,
    inputs: Mapping[str, ArrayLike],
    outputs: Mapping[str, ArrayLike],
    meta: Optional[Mapping[str, Any]] = None,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(golden_bytes(block, inputs, outputs, meta))
    return path


def read_golden(path: Union[str, Path]) -> Golden:
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GoldenFormatError(f"{path}: cannot read golden JSON ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("block"), str):
        raise GoldenFormatError(f"{path}: missing 'block' name")

    def group(kind: str) -> Dict[str, np.ndarray]:
        entries = document.get(kind, {})
        return {name: decode_tensor(entry, f"{path}: {kind}.{name}") for name, entry in entries.items()}

    return Golden(document["block"], group("inputs"), group("outputs"), document.get("meta", {}))
