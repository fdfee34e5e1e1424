"""Builds, validates and writes `manifest.json` for a model folder (format: models/README.md).

The zod schema of the TypeScript loader is the single definition of the format; `models/manifest.schema.json` is
generated from it (`npm run schema`) and every manifest is validated against it here. The checks written in this
module cover only what a JSON Schema cannot express: files exist inside the folder, their sizes and hashes, graph
external data versus listed weight files, kind/component agreement, unique block names, defaults membership.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import onnx
from onnx import TensorProto

from sora.jsonio import canonical_json_bytes

MANIFEST_NAME = "manifest.json"
FORMAT = "ondevice-sora-model"
FORMAT_VERSION = 1
DEFAULT_SCHEMA_PATH = Path(__file__).resolve().parents[2] / "models" / "manifest.schema.json"
DEFAULT_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

KIND_COMPONENT = {
    "t5-embed": "t5",
    "t5-layer": "t5",
    "t5-final-norm": "t5",
    "stdit-part1": "stdit",
    "stdit-st": "stdit",
    "stdit-tdtm": "stdit",
    "stdit-part2": "stdit",
    "vae-temporal": "vae",
    "vae-spatial": "vae",
}
ONNX_DTYPES = {
    TensorProto.FLOAT: "float32",
    TensorProto.FLOAT16: "float16",
    TensorProto.INT64: "int64",
    TensorProto.INT32: "int32",
}
# Bytes per element by ONNX type, for initializers stored in typed fields rather than raw_data. Written out
# because onnx moved its own table between releases (onnx.mapping in 1.12, helper functions from 1.13 on).
ONNX_ELEMENT_BYTES = {
    TensorProto.FLOAT: 4,
    TensorProto.FLOAT16: 2,
    TensorProto.BFLOAT16: 2,
    TensorProto.DOUBLE: 8,
    TensorProto.INT64: 8,
    TensorProto.INT32: 4,
    TensorProto.INT16: 2,
    TensorProto.INT8: 1,
    TensorProto.UINT8: 1,
    TensorProto.BOOL: 1,
}
MAX_REPORTED_ERRORS = 5
PACKAGE_SUFFIX = ".mlpackage"
# The ML Program weight file inside an .mlpackage (absent when a program has no weights).
PACKAGE_WEIGHTS = "Data/com.apple.CoreML/weights/weight.bin"
# Custom schema keyword carrying the bound on a declared tensor's elements (MAX_ELEMENTS_KEYWORD in manifest-schema.ts).
MAX_ELEMENTS_KEYWORD = "x-maxElements"
# MLComputeUnits a block may ask for on the CoreML backend (`computeUnits`; src/native/coreml.ts COMPUTE_UNITS).
COMPUTE_UNITS = ("all", "cpu", "cpu-gpu", "cpu-ane")

Dim = Union[int, str]


class ManifestError(ValueError):
    """An invalid manifest, block description or model folder."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # float32 | float16 | int64
    shape: Tuple[Dim, ...]  # ints, or symbolic names such as "N" for dynamic axes


@dataclass(frozen=True)
class BlockFile:
    path: str  # relative to the model folder, "/"-separated
    role: str  # graph | weights


@dataclass(frozen=True)
class BlockSpec:
    name: str
    component: str
    kind: str
    index: int
    files: Tuple[BlockFile, ...]
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    dtype: str = "float32"  # onnx: how weights are stored (float32 | float16 | int8); coreml: compute precision
    format: str = "onnx"
    compute_units: Optional[str] = None  # CoreML compute units for this block; None: the backend decides


@dataclass(frozen=True)
class Defaults:
    steps: int = 30
    cfg_scale: float = 7.0
    fps: int = 24
    aesthetic_score: float = 6.5
    resolution: str = "256x256"
    num_frames: int = 17
    resolutions: Tuple[str, ...] = ("256x256",)
    num_frames_choices: Tuple[int, ...] = (17, 34, 51, 68)


def _to_json_value(value: Any) -> Any:
    """Config values as JSON with the dataclass field names unchanged (the schema names them so); tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(key): _to_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_value(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ManifestError(f"config value {value!r} of type {type(value).__name__} has no JSON form")


def architecture_dict(t5: Any, stdit: Any, vae: Any) -> Dict[str, Any]:
    """The three configs (dataclasses or mappings) as the manifest's `architecture` object."""
    return {"t5": _to_json_value(t5), "stdit": _to_json_value(stdit), "vae": _to_json_value(vae)}


def package_digest(package: Path) -> str:
    """sha256 of a CoreML package folder: for every file in '/'-separated relative path order, the path, NUL, the
    size in decimal, NUL, then the bytes. The TypeScript loader computes the same (src/runtime/coreml-cache.ts packageContentHash)."""
    digest = hashlib.sha256()
    files = sorted((path.relative_to(package).as_posix(), path) for path in package.rglob("*") if path.is_file())
    for relative, path in files:
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _resolve_inside(model_dir: Path, relative: str, folder: bool = False) -> Path:
    pure = PurePosixPath(relative)
    if not relative or "\\" in relative or pure.is_absolute() or ".." in pure.parts:
        raise ManifestError(f"file path {relative!r} must be relative to the model folder, '/'-separated, no '..'")
    resolved = (model_dir / pure).resolve()
    if model_dir.resolve() not in resolved.parents:
        raise ManifestError(f"file path {relative!r} leaves the model folder {model_dir}")
    if not (resolved.is_dir() if folder else resolved.is_file()):
        kind = "package folder" if folder else "file"
        raise ManifestError(f"{model_dir / pure}: {kind} listed in the manifest does not exist")
    return resolved


class _FileFacts:
    """Size and sha256 per file, computed once even when blocks share a file (ST and TDTM weights)."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self._cache: Dict[str, Dict[str, Any]] = {}

    def entry(self, relative: str) -> Dict[str, Any]:
        """A file's size and sha256; a CoreML package folder's (`*.mlpackage`) total size and package_digest."""
        if relative not in self._cache:
            if relative.endswith(PACKAGE_SUFFIX):
                path = _resolve_inside(self.model_dir, relative, folder=True)
                size, digest = _folder_bytes(path), package_digest(path)
            else:
                path = _resolve_inside(self.model_dir, relative)
                with path.open("rb") as handle:
                    size, digest = path.stat().st_size, hashlib.file_digest(handle, "sha256").hexdigest()
            self._cache[relative] = {"path": relative, "bytes": size, "sha256": digest}
        return dict(self._cache[relative])


def _initializer_bytes(tensor: onnx.TensorProto) -> int:
    if tensor.HasField("raw_data"):
        return len(tensor.raw_data)
    if tensor.data_type not in ONNX_ELEMENT_BYTES:
        raise ManifestError(f"initializer {tensor.name!r} has an ONNX element type without a known size")
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count * ONNX_ELEMENT_BYTES[tensor.data_type]


def _external_location(tensor: onnx.TensorProto) -> str:
    return next(entry.value for entry in tensor.external_data if entry.key == "location")


def graph_weight_usage(graph_path: Path) -> Tuple[int, Set[Path]]:
    """(bytes of initializers embedded in the graph, resolved paths of the external data files it references)."""
    model = onnx.load(str(graph_path), load_external_data=False)
    embedded = 0
    external: Set[Path] = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            external.add((graph_path.parent / _external_location(tensor)).resolve())
        else:
            embedded += _initializer_bytes(tensor)
    return embedded, external


def _onnx_tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type not in ONNX_DTYPES:
        raise ManifestError(f"graph value {value.name!r} has an element type outside {sorted(ONNX_DTYPES.values())}")
    shape: List[Dim] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(dim.dim_value)
        elif dim.dim_param:
            shape.append(dim.dim_param)
        else:
            raise ManifestError(f"graph value {value.name!r} has an unnamed dynamic dimension")
    return TensorSpec(value.name, ONNX_DTYPES[tensor_type.elem_type], tuple(shape))


def io_specs_from_onnx(graph_path: Union[str, Path]) -> Tuple[Tuple[TensorSpec, ...], Tuple[TensorSpec, ...]]:
    """Inputs and outputs of an exported graph, with the dynamic axis names it was exported with."""
    graph = onnx.load(str(graph_path), load_external_data=False).graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = tuple(_onnx_tensor_spec(value) for value in graph.input if value.name not in initializers)
    return inputs, tuple(_onnx_tensor_spec(value) for value in graph.output)


def _tensor_spec_dict(spec: TensorSpec) -> Dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)}


def _onnx_weight_bytes(block: BlockSpec, graph: Path, files: Sequence[Dict[str, Any]], model_dir: Path) -> int:
    weights = {(model_dir / item.path).resolve() for item in block.files if item.role == "weights"}
    embedded, referenced = graph_weight_usage(graph)
    if referenced != weights:
        raise ManifestError(
            f"block {block.name}: graph external data {sorted(map(str, referenced))} "
            f"differs from its listed weight files {sorted(map(str, weights))}"
        )
    return embedded + sum(entry["bytes"] for entry in files if entry["role"] == "weights")


def _coreml_weight_bytes(block: BlockSpec, package: Path) -> int:
    """A CoreML block is one package folder (role graph); its weights are the package's weight file."""
    if len(block.files) != 1 or not block.files[0].path.endswith(PACKAGE_SUFFIX):
        raise ManifestError(f"block {block.name}: a coreml block lists exactly one {PACKAGE_SUFFIX} folder")
    weights = package / PACKAGE_WEIGHTS
    return weights.stat().st_size if weights.is_file() else 0


def _block_dict(model_dir: Path, block: BlockSpec, facts: _FileFacts) -> Dict[str, Any]:
    if block.compute_units is not None and block.compute_units not in COMPUTE_UNITS:
        raise ManifestError(f"block {block.name}: compute_units {block.compute_units!r} is not one of {', '.join(COMPUTE_UNITS)}")
    files = [dict(facts.entry(item.path), role=item.role) for item in block.files]
    graphs = [model_dir / item.path for item in block.files if item.role == "graph"]
    if len(graphs) != 1:
        raise ManifestError(f"block {block.name}: needs exactly one file with role 'graph', has {len(graphs)}")
    if block.format == "coreml":
        weight_bytes = _coreml_weight_bytes(block, graphs[0])
    else:
        weight_bytes = _onnx_weight_bytes(block, graphs[0], files, model_dir)
    return {
        "name": block.name,
        "component": block.component,
        "kind": block.kind,
        "index": block.index,
        "format": block.format,
        "dtype": block.dtype,
        "files": files,
        "weightBytes": weight_bytes,
        "inputs": [_tensor_spec_dict(spec) for spec in block.inputs],
        "outputs": [_tensor_spec_dict(spec) for spec in block.outputs],
        **({} if block.compute_units is None else {"computeUnits": block.compute_units}),
    }


def block_spec_of(entry: Mapping[str, Any]) -> BlockSpec:
    """A manifest's block entry back as the spec it was built from (files without their sizes and hashes)."""
    def specs(side: str) -> Tuple[TensorSpec, ...]:
        return tuple(TensorSpec(item["name"], item["dtype"], tuple(item["shape"])) for item in entry[side])

    return BlockSpec(
        entry["name"], entry["component"], entry["kind"], entry["index"],
        tuple(BlockFile(item["path"], item["role"]) for item in entry["files"]),
        specs("inputs"), specs("outputs"), dtype=entry["dtype"], format=entry["format"],
        compute_units=entry.get("computeUnits"),
    )


def describe_blocks(model_dir: Union[str, Path], blocks: Sequence[BlockSpec]) -> List[Dict[str, Any]]:
    """The manifest entries of blocks whose files are already in model_dir: sizes, sha256 and weight bytes measured."""
    facts = _FileFacts(Path(model_dir))
    return [_block_dict(Path(model_dir), block, facts) for block in blocks]


def describe_files(model_dir: Union[str, Path], paths: Sequence[str]) -> List[Dict[str, Any]]:
    """path, bytes and sha256 of files in model_dir (the tokenizer's entries)."""
    facts = _FileFacts(Path(model_dir))
    return [facts.entry(path) for path in paths]


def _defaults_dict(defaults: Defaults) -> Dict[str, Any]:
    return {
        "steps": defaults.steps,
        "cfgScale": defaults.cfg_scale,
        "fps": defaults.fps,
        "aestheticScore": defaults.aesthetic_score,
        "resolution": defaults.resolution,
        "numFrames": defaults.num_frames,
        "resolutions": list(defaults.resolutions),
        "numFramesChoices": list(defaults.num_frames_choices),
    }


def build_manifest(
    model_dir: Union[str, Path],
    *,
    name: str,
    description: str,
    t5: Any,
    stdit: Any,
    vae: Any,
    blocks: Sequence[BlockSpec],
    tokenizer_files: Sequence[str] = DEFAULT_TOKENIZER_FILES,
    max_length: int = 300,
    pad_id: int = 0,
    eos_id: int = 1,
    defaults: Defaults = Defaults(),
    vocabulary: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Manifest for files already written into model_dir; blocks keep the given (execution) order. `vocabulary`
    (words, objectWords, maxObjects) is for a model trained on a closed world, whose prompts the CLI checks."""
    model_dir = Path(model_dir)
    facts = _FileFacts(model_dir)
    manifest = {
        "format": FORMAT,
        "formatVersion": FORMAT_VERSION,
        "name": name,
        "description": description,
        "architecture": architecture_dict(t5, stdit, vae),
        "tokenizer": {
            "files": [facts.entry(path) for path in tokenizer_files],
            "maxLength": max_length,
            "padId": pad_id,
            "eosId": eos_id,
        },
        "blocks": [_block_dict(model_dir, block, facts) for block in blocks],
        "defaults": _defaults_dict(defaults),
    }
    if vocabulary is not None:
        manifest["vocabulary"] = vocabulary
    return manifest


def _check_schema(manifest: Dict[str, Any], schema_path: Path) -> None:
    if not schema_path.is_file():
        raise ManifestError(f"{schema_path}: manifest schema missing (generate it with `npm run schema`)")
    # Imported here: a training machine (e.g. a GPU box running train_shapes.py) may lack jsonschema and never validates.
    import jsonschema

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(manifest), key=lambda error: list(error.absolute_path))
    if errors:
        listed = "; ".join(
            f"/{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors[:MAX_REPORTED_ERRORS]
        )
        raise ManifestError(f"manifest does not match {schema_path}: {listed}")
    max_elements = _schema_keyword(schema, MAX_ELEMENTS_KEYWORD)
    if isinstance(max_elements, int):
        _check_tensor_sizes(manifest, max_elements)


def _schema_keyword(schema: Any, keyword: str) -> Any:
    """The first value of a custom keyword anywhere in the schema (the zod schema puts bounds it cannot express there)."""
    if isinstance(schema, Mapping):
        if keyword in schema:
            return schema[keyword]
        children: Sequence[Any] = list(schema.values())
    elif isinstance(schema, list):
        children = schema
    else:
        return None
    for child in children:
        found = _schema_keyword(child, keyword)
        if found is not None:
            return found
    return None


def _check_tensor_sizes(manifest: Dict[str, Any], max_elements: int) -> None:
    """Declared shapes' fixed dimensions multiplied (src/model/manifest-schema.ts checks the same bound)."""
    for block in manifest["blocks"]:
        for side in ("inputs", "outputs"):
            for spec in block[side]:
                elements = math.prod(dim for dim in spec["shape"] if isinstance(dim, int))
                if elements > max_elements:
                    raise ManifestError(
                        f"block {block['name']}: {side} {spec['name']!r} shape {spec['shape']} holds more than "
                        f"{max_elements} elements"
                    )


def _check_consistency(manifest: Dict[str, Any]) -> None:
    """Rules across fields, which a JSON Schema cannot state; assumes the schema has already passed."""
    for block in manifest["blocks"]:
        if block["component"] != KIND_COMPONENT[block["kind"]]:
            raise ManifestError(f"block {block['name']}: component {block['component']!r} does not match kind "
                                f"{block['kind']!r} (belongs to {KIND_COMPONENT[block['kind']]!r})")
    names = [block["name"] for block in manifest["blocks"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ManifestError(f"duplicate block names: {duplicates[:MAX_REPORTED_ERRORS]}")
    defaults = manifest["defaults"]
    if defaults["resolution"] not in defaults["resolutions"]:
        raise ManifestError(f"defaults.resolution {defaults['resolution']!r} is not one of defaults.resolutions")
    if defaults["numFrames"] not in defaults["numFramesChoices"]:
        raise ManifestError(f"defaults.numFrames {defaults['numFrames']} is not one of defaults.numFramesChoices")


def validate_manifest(manifest: Dict[str, Any], schema_path: Path = DEFAULT_SCHEMA_PATH) -> None:
    """Validates against the JSON Schema generated from the TypeScript zod schema, then the cross-field rules."""
    _check_schema(manifest, Path(schema_path))
    _check_consistency(manifest)


def check_can_write(
    model_dir: Union[str, Path], name: str, architecture: Mapping[str, Any], overwrite: bool = False
) -> None:
    """Refuses a folder whose manifest describes a different model; call it before exporting any block."""
    path = Path(model_dir) / MANIFEST_NAME
    if overwrite or not path.exists():
        return
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ManifestError(
            f"{path} exists but cannot be read ({error}); run again with --overwrite to replace it"
        ) from error
    if not isinstance(existing, dict) or existing.get("name") != name or existing.get("architecture") != architecture:
        found = existing.get("name") if isinstance(existing, dict) else None
        raise ManifestError(
            f"{path} describes a different model ({found!r}, not {name!r} with this architecture); "
            "run again with --overwrite to replace it"
        )


def write_manifest(
    model_dir: Union[str, Path],
    manifest: Dict[str, Any],
    *,
    overwrite: bool = False,
    schema_path: Path = DEFAULT_SCHEMA_PATH,
) -> Path:
    """Validates, then writes manifest.json (sorted keys, 2-space indent, trailing newline)."""
    model_dir = Path(model_dir)
    validate_manifest(manifest, schema_path)
    check_can_write(model_dir, manifest["name"], manifest["architecture"], overwrite)
    path = model_dir / MANIFEST_NAME
    path.write_bytes(canonical_json_bytes(manifest))
    return path
