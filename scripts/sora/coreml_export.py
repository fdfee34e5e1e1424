"""Converts the blocks of a model to CoreML ML Program packages (`<component>/<contract name>.mlpackage`).

Same blocks, wrappers, names and example inputs as the ONNX export (sora/onnx_export.py): each block is traced
with torch.jit.trace and converted by coremltools (8.3; conversion works on Linux, prediction needs macOS). Inputs
and outputs keep the contract names, which are those of the published On-device Sora packages, so the CoreML
backend runs converted and published folders alike. Differences from the published set, all deliberate:

- integer inputs (`input_ids`, `T`, `padH`, `padW`) are int32 (CoreML has no int64; the published set declares
  float32 and the app feeds floats); the backend converts what it feeds to the declared type;
- every axis that is dynamic in the ONNX contract is a bounded range here (LatentBounds), instead of the published
  set's ranges fitted to its 144p trace; the attention mask's head axis accepts 1 (broadcast) up to all heads;
- precision and compute units are chosen per block (BLOCK_PRECISION, compute_units) and recorded in the manifest;
- ST and TDTM packages of one block pair each hold their own copy of the weights (CoreML packages cannot share
  a weight file).

Determinism: coremltools names the items of an .mlpackage's Manifest.json with random UUIDs, and serialises the
model spec's protobuf maps in no fixed order. The identifiers are replaced by ones derived from the item's path and
the spec is re-serialised with sorted maps, so that a conversion repeated with the same weights gives the same
bytes (models/tiny-coreml is checked that way, like models/tiny).
"""

from __future__ import annotations

import json
import logging
import math
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from sora.manifest import BlockFile, BlockSpec, Defaults, TensorSpec
from sora.onnx_export import EXAMPLE_VAE_HEIGHT, EXAMPLE_VAE_WIDTH, BlockExport, ExportUnit
from sora.vae_blocks import SPATIAL_PART_NAMES, TEMPORAL_PART_NAMES

INSTALL_HINT = (
    "coremltools 8.3 is needed for --format coreml: /usr/bin/python3 -m venv --system-site-packages .venv-coreml "
    "&& .venv-coreml/bin/pip install coremltools==8.3, then run the converter with .venv-coreml/bin/python"
)
PACKAGE_SUFFIX = ".mlpackage"
CFG_BATCH = 2
FRAMES_PER_CHUNK, LATENTS_PER_CHUNK, SPATIAL_FACTOR = 17, 5, 8

# The app's MLComputeUnits per block (SoraPipeline.swift, VAEDecoder.swift; reference §A.2–A.4): CPU+GPU for T5
# and STDiT, CPU only for the temporal VAE parts but part2_2 and for spatial 3_3 and 3_4_x, CPU+GPU elsewhere.
CPU_ONLY_PARTS = frozenset(
    [name for name in TEMPORAL_PART_NAMES if name != "vae_temporal_part2_2"]
    + ["vae_spatial_part3_3", "vae_spatial_part3_4_1", "vae_spatial_part3_4_2", "vae_spatial_part3_4_3"]
)

# Compute precision per block kind, from the float16-vs-float32 measurements in the README (scripts/coreml_precision.py):
# T5 v1.1 is known to overflow float16 activations; the SDXL spatial VAE decoder likewise (its fp16 NaNs are why
# "fp16-fix" variants exist); STDiT3 and the temporal VAE stay within float16's range and lose little.
BLOCK_PRECISION: Mapping[str, str] = {
    "t5-embed": "float32",
    "t5-layer": "float32",
    "t5-final-norm": "float32",
    "stdit-part1": "float32",
    "stdit-st": "float16",
    "stdit-tdtm": "float16",
    "stdit-part2": "float16",
    "vae-temporal": "float16",
    "vae-spatial": "float32",
}


# The lowest target every block's ops convert for (each block was tried from iOS15 up; all pass at iOS15, the first
# with ML Programs): iOS 15 / macOS 12. The published packages target iOS 18 / macOS 15.
DEPLOYMENT_TARGET = "iOS15"


class CoreMLExportError(ValueError):
    """A block that coremltools cannot convert, or coremltools missing."""


def import_coremltools():
    """coremltools, or a CoreMLExportError saying how to install it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import coremltools
    except ImportError as error:
        raise CoreMLExportError(INSTALL_HINT) from error
    return coremltools


_PREPARED: List[bool] = []


def _pass_through(iterable=None, *args, **kwargs):
    return iterable


def _prepare() -> None:
    """Once per process: coremltools' progress bars and informational warnings off (the converter reports per
    block), and the group_norm lowering below."""
    if _PREPARED:
        return
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.mil.passes import pass_pipeline

    ops._tqdm = _pass_through
    pass_pipeline.tqdm = _pass_through
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    _register_group_norm()
    _PREPARED.append(True)


def _register_group_norm() -> None:
    """coremltools 8.3 lowers group_norm through a reshape whose target shape lists the batch size as a Python
    value, which fails when the batch is a flexible axis (the spatial VAE parts' frames). This lowering builds that
    shape at run time instead; the arithmetic is the same: per sample and group, (x - mean) / sqrt(var + eps),
    then the per-channel weight and bias."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs
    from coremltools.converters.mil.frontend.torch.torch_op_registry import register_torch_op

    @register_torch_op(override=True)
    def group_norm(context, node):
        x, groups, weight, bias, eps = _get_inputs(context, node, expected=6)[:5]
        channels = x.shape[1]
        shape = mb.shape(x=x)
        grouped = mb.concat(values=[mb.slice_by_size(x=shape, begin=[0], size=[1]), [groups.val, -1]], axis=0)
        y = mb.reshape(x=x, shape=grouped)
        mean = mb.reduce_mean(x=y, axes=[2], keep_dims=True)
        centered = mb.sub(x=y, y=mean)
        var = mb.reduce_mean(x=mb.mul(x=centered, y=centered), axes=[2], keep_dims=True)
        y = mb.real_div(x=centered, y=mb.sqrt(x=mb.add(x=var, y=eps.val)))
        y = mb.reshape(x=y, shape=shape)
        per_channel = [1, channels] + [1] * (x.rank - 2)
        if weight is None or bias is None:
            raise ValueError(f"{node.name}: group_norm without weight and bias is not supported here")
        y = mb.mul(x=y, y=mb.reshape(x=weight, shape=per_channel))
        context.add(mb.add(x=y, y=mb.reshape(x=bias, shape=per_channel), name=node.name))


def compute_units(name: str) -> str:
    """The manifest's `computeUnits` of a block: the app's choice (all | cpu | cpu-gpu | cpu-ane)."""
    return "cpu" if name in CPU_ONLY_PARTS else "cpu-gpu"


@dataclass(frozen=True)
class LatentSize:
    frames: int
    height: int
    width: int

    @property
    def tokens(self) -> int:
        """STDiT tokens per sample: frames × patches (patch 2×2, odd sides padded)."""
        return self.frames * math.ceil(self.height / 2) * math.ceil(self.width / 2)


def latent_size(resolution: str, num_frames: int) -> LatentSize:
    width, height = (int(part) for part in resolution.split("x"))
    return LatentSize(num_frames // FRAMES_PER_CHUNK * LATENTS_PER_CHUNK, height // SPATIAL_FACTOR, width // SPATIAL_FACTOR)


@dataclass(frozen=True)
class LatentBounds:
    """The largest latent a converted model accepts, and the usual one (CoreML's default shape)."""

    largest: LatentSize
    usual: LatentSize
    caption_tokens: int = 300

    @staticmethod
    def from_defaults(defaults: Defaults) -> "LatentBounds":
        """Largest: every resolution and frame count the manifest offers; usual: its default video."""
        sizes = [latent_size(resolution, max(defaults.num_frames_choices)) for resolution in defaults.resolutions]
        largest = LatentSize(
            max(size.frames for size in sizes), max(size.height for size in sizes), max(size.width for size in sizes)
        )
        return LatentBounds(largest, latent_size(defaults.resolution, defaults.num_frames))


Range = Tuple[int, int, int]  # lower, upper, default


def _stdit_ranges(bounds: LatentBounds, heads: int) -> Dict[str, Range]:
    big, usual = bounds.largest, bounds.usual
    rows = CFG_BATCH * bounds.caption_tokens
    return {
        "B": (1, CFG_BATCH, CFG_BATCH),
        "T": (1, big.frames, usual.frames),
        "H": (1, big.height, usual.height),
        "W": (1, big.width, usual.width),
        "N": (1, big.tokens, usual.tokens),
        "M": (1, rows, min(rows, 2 * 32)),
        "A": (1, heads, 1),
        "Q": (1, CFG_BATCH * big.tokens, CFG_BATCH * usual.tokens),
    }


def _vae_ranges(block: BlockExport, bounds: LatentBounds, example: Sequence[int]) -> Dict[str, Range]:
    """Frames up to one chunk's (the example's), height and width scaled like the example (2h, 4h, 8h parts)."""
    frame_axis, height_axis = (2, 3) if block.name in TEMPORAL_PART_NAMES or block.name == SPATIAL_PART_NAMES[0] else (0, 2)
    scale_h, scale_w = example[height_axis] // EXAMPLE_VAE_HEIGHT, example[height_axis + 1] // EXAMPLE_VAE_WIDTH
    big, usual = bounds.largest, bounds.usual
    chunk = example[frame_axis]
    return {
        "frames": (1, chunk, chunk),
        "height": (scale_h, scale_h * big.height, scale_h * usual.height),
        "width": (scale_w, scale_w * big.width, scale_w * usual.width),
    }


def input_ranges(block: BlockExport, bounds: LatentBounds, heads: int) -> Dict[str, Dict[int, Range]]:
    """(lower, upper, default) of every dynamic input axis, by input name and axis."""
    ranges: Dict[str, Dict[int, Range]] = {}
    for name, example in zip(block.input_names, block.example):
        axes = block.dynamic_axes.get(name, {})
        table = _vae_ranges(block, bounds, example.shape) if block.component == "vae" else _stdit_ranges(bounds, heads)
        unknown = sorted(set(axes.values()) - set(table))
        if unknown:
            raise CoreMLExportError(f"{block.name}: input {name}: no range for dynamic axes {unknown}")
        ranges[name] = {axis: table[symbol] for axis, symbol in axes.items()}
    return ranges


def _input_type(ct, name: str, example: torch.Tensor, ranges: Mapping[int, Range]):
    dims = [
        ct.RangeDim(lower_bound=ranges[axis][0], upper_bound=ranges[axis][1], default=ranges[axis][2])
        if axis in ranges else size
        for axis, size in enumerate(example.shape)
    ]
    dtype = np.float32 if example.is_floating_point() else np.int32
    return ct.TensorType(name=name, shape=ct.Shape(dims), dtype=dtype)


def _spec_dtype(tensor: torch.Tensor) -> str:
    return "float32" if tensor.is_floating_point() else "int32"


def _tensor_specs(names: Sequence[str], tensors: Sequence[torch.Tensor], axes: Mapping[str, Mapping[int, str]]):
    """Manifest specs: symbolic names on the dynamic axes (as the ONNX export has them), example sizes elsewhere."""
    return tuple(
        TensorSpec(name, _spec_dtype(tensor), tuple(axes.get(name, {}).get(axis, size) for axis, size in enumerate(tensor.shape)))
        for name, tensor in zip(names, tensors)
    )


SPEC_PATH = "Data/com.apple.CoreML/model.mlmodel"


def make_deterministic(package: Path) -> None:
    """Item identifiers of <package>/Manifest.json derived from each item's path; the spec with sorted maps."""
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec_path = package / SPEC_PATH
    spec.ParseFromString(spec_path.read_bytes())
    spec_path.write_bytes(spec.SerializeToString(deterministic=True))
    path = package / "Manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    renames = {
        old: str(uuid.uuid5(uuid.NAMESPACE_URL, f"ondevice-sora:{entry['path']}")).upper()
        for old, entry in manifest["itemInfoEntries"].items()
    }
    manifest["itemInfoEntries"] = {renames[old]: entry for old, entry in sorted(manifest["itemInfoEntries"].items(), key=lambda item: item[1]["path"])}
    manifest["rootModelIdentifier"] = renames[manifest["rootModelIdentifier"]]
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class CoreMLSettings:
    bounds: LatentBounds
    heads: int  # STDiT attention heads: the upper bound of the mask's head axis
    precision: Optional[str] = None  # float32 | float16 for every block; None: BLOCK_PRECISION
    target: str = DEPLOYMENT_TARGET  # coremltools target name (ct.target.<target>)


def convert_block(block: BlockExport, settings: CoreMLSettings):
    """The block as an in-memory ct.models.MLModel (not yet saved)."""
    ct = import_coremltools()
    _prepare()
    precision = settings.precision or BLOCK_PRECISION[block.kind]
    ranges = input_ranges(block, settings.bounds, settings.heads)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings are checked by the ONNX export of the same graphs
        traced = torch.jit.trace(block.wrapper.eval(), block.example, check_trace=False)
        try:
            return ct.convert(
                traced,
                inputs=[_input_type(ct, name, ex, ranges[name]) for name, ex in zip(block.input_names, block.example)],
                outputs=[ct.TensorType(name=name) for name in block.output_names],
                convert_to="mlprogram",
                compute_precision=ct.precision.FLOAT16 if precision == "float16" else ct.precision.FLOAT32,
                minimum_deployment_target=getattr(ct.target, settings.target),
                skip_model_load=True,  # loading needs macOS; conversion does not
            )
        except Exception as error:  # coremltools raises bare RuntimeError/ValueError/TypeError from its frontends
            raise CoreMLExportError(f"{block.name}: coremltools cannot convert it: {error}") from error


def export_coreml_block(block: BlockExport, out_dir: Path, settings: CoreMLSettings) -> BlockSpec:
    model = convert_block(block, settings)
    relative = f"{block.component}/{block.name}{PACKAGE_SUFFIX}"
    package = Path(out_dir) / relative
    package.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(package))
    make_deterministic(package)
    with torch.no_grad():
        outputs = block.wrapper(*block.example)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return BlockSpec(
        block.name, block.component, block.kind, block.index,
        (BlockFile(relative, "graph"),),
        _tensor_specs(block.input_names, block.example, block.dynamic_axes),
        _tensor_specs(block.output_names, outputs, block.dynamic_axes),
        dtype=settings.precision or BLOCK_PRECISION[block.kind],
        format="coreml",
        compute_units=compute_units(block.name),
    )


def export_coreml_unit(unit: ExportUnit, out_dir: Path, settings: CoreMLSettings) -> List[BlockSpec]:
    return [export_coreml_block(block, Path(out_dir), settings) for block in unit.blocks]


def export_coreml_units(units: Sequence[ExportUnit], out_dir: Path, settings: CoreMLSettings) -> List[BlockSpec]:
    return [spec for unit in units for spec in export_coreml_unit(unit, Path(out_dir), settings)]
