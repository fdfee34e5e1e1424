"""Checkpoint reading (safetensors, sharded safetensors/PyTorch, PyTorch pickles) and safetensors writing.

The safetensors format is read and written here by hand: Debian ships no `safetensors` package, and the format
is small (8-byte little-endian header length, a JSON header of name -> dtype/shape/byte offsets, then raw
little-endian data). Reading maps each tensor with `numpy.memmap` on demand, so a converter can stream a
checkpoint one block at a time and keep resident memory near one block even for T5-XXL (18 GB in float32).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Protocol, Tuple, Union

import numpy as np
import torch

from sora.jsonio import write_canonical_json

HEADER_LENGTH_BYTES = 8
# A header beyond this is certainly corruption (real headers are a few MB at most); checking it first avoids
# trying to allocate a garbage length.
MAX_HEADER_BYTES = 100 * 1024 * 1024
HEADER_ALIGNMENT = 8
METADATA_KEY = "__metadata__"

# safetensors dtype code -> little-endian numpy storage dtype; BF16 has no numpy type and is widened by bit shift.
STORAGE_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "I64": np.dtype("<i8")}
# Stored dtype names, safetensors codes and torch names alike, that hold floating-point values.
FLOAT_DTYPE_NAMES = ("F32", "F16", "BF16", "float32", "float16", "bfloat16", "float64")
TORCH_TO_CODE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
TORCH_EXTENSIONS = (".bin", ".pt", ".pth", ".ckpt")
INDEX_SUFFIX = ".index.json"
# Checkpoints saved from training scripts nest the state dict under one of these keys.
WRAPPER_KEYS = ("state_dict", "model", "module")
DDP_PREFIX = "module."

TensorLike = Union[torch.Tensor, np.ndarray]


class CheckpointError(ValueError):
    """A checkpoint file or folder that cannot be read; the message names the file."""


class TensorSource(Protocol):
    """What every checkpoint layout provides; CheckpointReader picks the layout."""

    def keys(self) -> List[str]: ...

    def shape(self, key: str) -> Tuple[int, ...]: ...

    def dtype(self, key: str) -> str: ...

    def load(self, key: str) -> torch.Tensor: ...


def _is_int_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, int) and item >= 0 for item in value)


def _bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    # bfloat16 is the upper half of a float32, so shifting the 16 bits up reconstructs the value exactly.
    return (bits.astype(np.uint32) << 16).view(np.float32)


class SafetensorsFile:
    """One `.safetensors` file; only the header is read up front."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self._entries, self._data_start, self.metadata = self._read_header()

    def _fail(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {problem}")

    def _read_header(self) -> Tuple[Dict[str, dict], int, Dict[str, str]]:
        try:
            file_size = self.path.stat().st_size
            with self.path.open("rb") as handle:
                prefix = handle.read(HEADER_LENGTH_BYTES)
                if len(prefix) < HEADER_LENGTH_BYTES:
                    raise self._fail("too short for a safetensors header")
                (header_length,) = struct.unpack("<Q", prefix)
                if header_length > min(MAX_HEADER_BYTES, file_size - HEADER_LENGTH_BYTES):
                    raise self._fail(f"header length {header_length} is impossible for a file of {file_size} bytes")
                raw_header = handle.read(header_length)
        except OSError as error:
            raise self._fail(f"cannot read ({error.strerror})") from error
        try:
            header = json.loads(raw_header.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise self._fail(f"header is not valid JSON ({error})") from error
        if not isinstance(header, dict):
            raise self._fail("header is not a JSON object")
        metadata = header.pop(METADATA_KEY, None) or {}
        data_start = HEADER_LENGTH_BYTES + header_length
        for name, entry in header.items():
            self._check_entry(name, entry, file_size - data_start)
        return header, data_start, metadata

    def _check_entry(self, name: str, entry: object, data_size: int) -> None:
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise self._fail(f"tensor {name!r} lacks dtype/shape/data_offsets")
        offsets = entry["data_offsets"]
        if not (_is_int_list(entry["shape"]) and _is_int_list(offsets) and len(offsets) == 2):
            raise self._fail(f"tensor {name!r} has a malformed shape or data_offsets")
        if entry["dtype"] not in STORAGE_DTYPES:
            raise self._fail(f"tensor {name!r} has unsupported dtype {entry['dtype']} (supported: F32, F16, BF16, I64)")
        begin, end = offsets
        expected = int(np.prod(entry["shape"], dtype=np.int64)) * STORAGE_DTYPES[entry["dtype"]].itemsize
        if not 0 <= begin <= end <= data_size or end - begin != expected:
            raise self._fail(
                f"tensor {name!r} offsets {begin}..{end} do not fit shape {entry['shape']} "
                f"{entry['dtype']} within {data_size} data bytes"
            )

    def _entry(self, key: str) -> dict:
        if key not in self._entries:
            raise KeyError(f"{self.path}: no tensor named {key!r}")
        return self._entries[key]

    def keys(self) -> List[str]:
        return sorted(self._entries)

    def shape(self, key: str) -> Tuple[int, ...]:
        return tuple(self._entry(key)["shape"])

    def dtype(self, key: str) -> str:
        """The stored safetensors dtype code (F32, F16, BF16, I64)."""
        return self._entry(key)["dtype"]

    def load(self, key: str) -> torch.Tensor:
        entry = self._entry(key)
        shape = tuple(entry["shape"])
        storage = STORAGE_DTYPES[entry["dtype"]]
        if 0 in shape:
            # numpy cannot memory-map zero bytes.
            stored = np.zeros(shape, dtype=storage)
        else:
            offset = self._data_start + entry["data_offsets"][0]
            stored = np.memmap(self.path, dtype=storage, mode="r", offset=offset, shape=shape)
        if entry["dtype"] == "BF16":
            return torch.from_numpy(_bf16_to_float32(stored))
        native = np.int64 if entry["dtype"] == "I64" else np.float32
        # np.array copies out of the read-only map, so the tensor owns its memory and the file can go away.
        return torch.from_numpy(np.array(stored, dtype=native))


def _unwrap_state_dict(obj: object, path: Path) -> Dict[str, torch.Tensor]:
    while isinstance(obj, dict):
        wrapper = next((key for key in WRAPPER_KEYS if isinstance(obj.get(key), dict)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: no state dict found (expected a mapping of names to tensors)")
    not_tensors = [key for key, value in obj.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: entries that are not tensors: {not_tensors[:5]}")
    if all(key.startswith(DDP_PREFIX) for key in obj):
        obj = {key[len(DDP_PREFIX):]: value for key, value in obj.items()}
    return obj


class TorchFile:
    """A PyTorch pickle checkpoint; pickles cannot be read partially, so the whole state dict is loaded once."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        try:
            # weights_only: a checkpoint downloaded from the internet must not be able to run code on load.
            raw = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many unrelated types for a broken file
            raise CheckpointError(f"{self.path}: cannot load PyTorch checkpoint ({error})") from error
        self._tensors = _unwrap_state_dict(raw, self.path)

    def keys(self) -> List[str]:
        return sorted(self._tensors)

    def shape(self, key: str) -> Tuple[int, ...]:
        return tuple(self._get(key).shape)

    def dtype(self, key: str) -> str:
        """The safetensors code of the stored dtype (F32, F16, BF16, I64), else torch's name for it."""
        stored = self._get(key).dtype
        return TORCH_TO_CODE.get(stored, str(stored).replace("torch.", ""))

    def _get(self, key: str) -> torch.Tensor:
        if key not in self._tensors:
            raise KeyError(f"{self.path}: no tensor named {key!r}")
        return self._tensors[key]

    def load(self, key: str) -> torch.Tensor:
        tensor = self._get(key)
        return tensor.float() if tensor.is_floating_point() else tensor.long()


def _open_file(path: Path) -> TensorSource:
    if path.name.endswith(INDEX_SUFFIX):
        return ShardedCheckpoint(path)
    if path.suffix == ".safetensors":
        return SafetensorsFile(path)
    if path.suffix in TORCH_EXTENSIONS:
        return TorchFile(path)
    raise CheckpointError(f"{path}: unknown checkpoint type (expected .safetensors, {', '.join(TORCH_EXTENSIONS)}, "
                          f"or *{INDEX_SUFFIX})")


class ShardedCheckpoint:
    """Shards listed by a Hugging Face `*.index.json` weight map; each shard is opened on first use.

    Only one PyTorch shard is kept loaded at a time, so reading keys in shard order keeps memory near one shard.
    """

    def __init__(self, index_path: Union[str, Path]):
        self.path = Path(index_path)
        try:
            index = json.loads(self.path.read_text(encoding="utf-8"))
            weight_map = index["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{self.path}: not a readable index with a weight_map ({error})") from error
        self._weight_map: Dict[str, str] = dict(weight_map)
        self._open: Dict[str, TensorSource] = {}
        missing = sorted({shard for shard in self._weight_map.values() if not (self.path.parent / shard).is_file()})
        if missing:
            raise CheckpointError(f"{self.path}: shard files missing: {missing[:5]}")

    def _reader_for(self, key: str) -> TensorSource:
        if key not in self._weight_map:
            raise KeyError(f"{self.path}: no tensor named {key!r}")
        shard = self._weight_map[key]
        if shard not in self._open:
            if shard.endswith(TORCH_EXTENSIONS):
                self._open.clear()  # drop the previous pickle shard before loading the next one
            self._open[shard] = _open_file(self.path.parent / shard)
        return self._open[shard]

    def keys(self) -> List[str]:
        return sorted(self._weight_map)

    def shape(self, key: str) -> Tuple[int, ...]:
        return self._reader_for(key).shape(key)

    def dtype(self, key: str) -> str:
        return self._reader_for(key).dtype(key)

    def load(self, key: str) -> torch.Tensor:
        return self._reader_for(key).load(key)


class MergedCheckpoint:
    """Several unindexed files of one folder read as one checkpoint (e.g. a folder of `*.safetensors` parts)."""

    def __init__(self, readers: Iterable[TensorSource], folder: Path):
        self._owner: Dict[str, TensorSource] = {}
        for reader in readers:
            for key in reader.keys():
                if key in self._owner:
                    raise CheckpointError(f"{folder}: tensor {key!r} appears in more than one file")
                self._owner[key] = reader

    def keys(self) -> List[str]:
        return sorted(self._owner)

    def _reader_for(self, key: str) -> TensorSource:
        if key not in self._owner:
            raise KeyError(f"no tensor named {key!r}")
        return self._owner[key]

    def shape(self, key: str) -> Tuple[int, ...]:
        return self._reader_for(key).shape(key)

    def dtype(self, key: str) -> str:
        return self._reader_for(key).dtype(key)

    def load(self, key: str) -> torch.Tensor:
        return self._reader_for(key).load(key)


def _open_folder(folder: Path) -> TensorSource:
    indexes = sorted(folder.glob(f"*{INDEX_SUFFIX}"))
    # Hugging Face folders often hold the same weights twice (safetensors and .bin); prefer safetensors.
    safetensors_indexes = [index for index in indexes if index.name.endswith(".safetensors" + INDEX_SUFFIX)]
    if indexes:
        return ShardedCheckpoint((safetensors_indexes or indexes)[0])
    files = sorted(folder.glob("*.safetensors")) or sorted(p for p in folder.iterdir() if p.suffix in TORCH_EXTENSIONS)
    if not files:
        raise CheckpointError(f"{folder}: no checkpoint files (*.safetensors, *.bin, *.pt, *.pth, *.ckpt, index)")
    if len(files) == 1:
        return _open_file(files[0])
    return MergedCheckpoint((_open_file(path) for path in files), folder)


class CheckpointReader:
    """Named tensors of a checkpoint: a single file, an `*.index.json` of shards, or a folder holding either.

    Nothing but headers is read up front for safetensors; `load` reads one tensor.
    """

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        if self.path.is_dir():
            self._source = _open_folder(self.path)
        elif self.path.is_file():
            self._source = _open_file(self.path)
        else:
            raise CheckpointError(f"{self.path}: no such checkpoint file or folder")

    def keys(self) -> List[str]:
        """All tensor names, sorted."""
        return self._source.keys()

    def shape(self, key: str) -> Tuple[int, ...]:
        return self._source.shape(key)

    def dtype(self, key: str) -> str:
        """The stored dtype: F32, F16, BF16, I64 (safetensors codes), or torch's name for other pickled dtypes."""
        return self._source.dtype(key)

    def is_floating(self, key: str) -> bool:
        return self.dtype(key) in FLOAT_DTYPE_NAMES

    def load(self, key: str) -> torch.Tensor:
        """Float tensors (F32, F16, BF16) come back as float32, integer tensors as int64."""
        return self._source.load(key)


def _tensor_bytes(value: TensorLike) -> Tuple[str, List[int], bytes]:
    tensor = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype not in TORCH_TO_CODE:
        raise ValueError(f"cannot store dtype {tensor.dtype} (supported: float32, float16, bfloat16, int64)")
    code = TORCH_TO_CODE[tensor.dtype]
    # numpy has no bfloat16, so its bits are exported through a same-width integer view.
    array = tensor.view(torch.int16).numpy() if code == "BF16" else tensor.numpy()
    return code, list(tensor.shape), array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def _write_header(handle, header: Dict[str, object], metadata: Optional[Mapping[str, str]]) -> None:
    if metadata:
        header[METADATA_KEY] = dict(metadata)
    raw_header = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    raw_header += b" " * (-len(raw_header) % HEADER_ALIGNMENT)  # the format pads the header with spaces
    handle.write(struct.pack("<Q", len(raw_header)))
    handle.write(raw_header)


def write_safetensors(
    path: Union[str, Path], tensors: Mapping[str, TensorLike], metadata: Optional[Mapping[str, str]] = None
) -> Path:
    """Writes tensors (in their own dtype) in sorted-name order; identical input gives identical bytes."""
    path = Path(path)
    header: Dict[str, object] = {}
    chunks: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        code, shape, data = _tensor_bytes(tensors[name])
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    with path.open("wb") as handle:
        _write_header(handle, header, metadata)
        for chunk in chunks:
            handle.write(chunk)
    return path


def write_safetensors_streamed(
    path: Union[str, Path], shapes: Mapping[str, Tuple[int, ...]], produce: Callable[[str], TensorLike]
) -> Path:
    """Writes float32 tensors of the given shapes, asking `produce(name)` for one tensor at a time, so a file far
    larger than memory can be written; the bytes equal write_safetensors of the same tensors."""
    path = Path(path)
    header: Dict[str, object] = {}
    offset = 0
    for name in sorted(shapes):
        size = int(np.prod(shapes[name], dtype=np.int64)) * 4
        header[name] = {"dtype": "F32", "shape": list(shapes[name]), "data_offsets": [offset, offset + size]}
        offset += size
    with path.open("wb") as handle:
        _write_header(handle, header, None)
        for name in sorted(shapes):
            code, shape, data = _tensor_bytes(produce(name))
            if code != "F32" or tuple(shape) != tuple(shapes[name]):
                raise ValueError(f"{name}: produced {code} {shape}, expected F32 {list(shapes[name])}")
            handle.write(data)
    return path


def _tensor_nbytes(value: TensorLike) -> int:
    return value.nbytes if isinstance(value, np.ndarray) else value.numel() * value.element_size()


def _write_shards(
    folder: Union[str, Path],
    sizes: Mapping[str, int],
    write_shard: Callable[[Path, List[str]], None],
    max_shard_bytes: int,
    prefix: str,
) -> Path:
    """Groups tensor names into shards in sorted-name order (a new shard starts when the next tensor would exceed
    max_shard_bytes), has `write_shard` write each, then writes the index; returns the index path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    groups: List[List[str]] = [[]]
    group_bytes = 0
    for name in sorted(sizes):
        if groups[-1] and group_bytes + sizes[name] > max_shard_bytes:
            groups.append([])
            group_bytes = 0
        groups[-1].append(name)
        group_bytes += sizes[name]
    weight_map: Dict[str, str] = {}
    for number, names in enumerate(groups, start=1):
        shard = f"{prefix}-{number:05d}-of-{len(groups):05d}.safetensors"
        write_shard(folder / shard, names)
        weight_map.update({name: shard for name in names})
    index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}
    return write_canonical_json(folder / f"{prefix}.safetensors{INDEX_SUFFIX}", index)


def write_sharded_safetensors(
    folder: Union[str, Path], tensors: Mapping[str, TensorLike], max_shard_bytes: int, prefix: str = "model"
) -> Path:
    """Writes Hugging Face style shards `{prefix}-0000i-of-0000n.safetensors` plus `{prefix}.safetensors.index.json`;
    returns the index path."""
    sizes = {name: _tensor_nbytes(value) for name, value in tensors.items()}
    return _write_shards(
        folder, sizes, lambda path, names: write_safetensors(path, {n: tensors[n] for n in names}), max_shard_bytes, prefix
    )


def write_sharded_safetensors_streamed(
    folder: Union[str, Path],
    shapes: Mapping[str, Tuple[int, ...]],
    produce: Callable[[str], TensorLike],
    max_shard_bytes: int,
    prefix: str = "model",
) -> Path:
    """write_sharded_safetensors for float32 tensors produced one at a time (see write_safetensors_streamed)."""
    sizes = {name: int(np.prod(shape, dtype=np.int64)) * 4 for name, shape in shapes.items()}
    return _write_shards(
        folder, sizes, lambda path, names: write_safetensors_streamed(path, {n: shapes[n] for n in names}, produce),
        max_shard_bytes, prefix,
    )
