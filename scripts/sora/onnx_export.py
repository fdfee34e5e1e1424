"""Exports the blocks of a model (T5 encoder, STDiT3, VAE decoder) as ONNX graphs in the block contract.

Folder layout (models/README.md): `t5/`, `stdit/` and `vae/` hold one `<contract name>.onnx` per block. Every
initializer of at least EXTERNAL_MIN_ELEMENTS elements (the weights; small shape constants stay inline) is stored
as ONNX external data in `<contract name>.data` beside its graph, except that `stdit3_ST_i` and `stdit3_TDTM_i`
are one graph, `stdit/stdit3_block_i.onnx` with `stdit3_block_i.data`, listed under both names: the height of its
`attn` input says which variant a call is (stdit3.FrameMatrices), so a runtime loads and prepacks the weights once
for both. Tensor offsets inside a data file are DATA_ALIGNMENT-aligned so that a runtime can memory-map them page
by page.

Determinism: torch.onnx.export (1.13) produces the same graph for the same module and example shapes, but names
the initializers that constant folding creates (`onnx::MatMul_744`, a transposed Linear weight) by a graph-wide
counter, which differs between the ST and TDTM graphs of one block pair. Such initializers are renamed after the
state-dict tensor whose data they hold (`attn.qkv.weight.T`) or, failing that, after their content. Producer,
doc strings and graph names are fixed, external data is written by this module in initializer order, and
example inputs come from fixed seeds, so an export repeated with the same weights gives the same bytes.

float16 is weight-only: weight initializers are stored as float16 and a Cast node at the start of the graph turns
each back into float32, so every computation, every input and every output stays float32 (T5 v1.1 is known to
overflow float16 activations, and LayerNorm/GroupNorm/softmax keep their float32 range). It halves the files;
a runtime that folds the Casts at load time holds float32 copies in memory.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import onnx
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

from sora.onnx_weights import (  # noqa: F401 (DATA_ALIGNMENT, EXTERNAL_MIN_ELEMENTS: re-exported)
    DATA_ALIGNMENT,
    EXTERNAL_MIN_ELEMENTS,
    point_to,
    rename_inputs,
    weights_of,
    weights_to_float16,
    write_weights,
)
from sora.manifest import KIND_COMPONENT, BlockFile, BlockSpec, io_specs_from_onnx
from sora.stdit3 import STDiT3, block_diagonal_mask
from sora.stdit_blocks import STDiTBlockPair, STDiTPart1, STDiTPart2
from sora.t5_encoder import T5EncoderModel, additive_mask
from sora.text_blocks import T5Embed, T5FinalNorm, T5Layer, T5Layer0
from sora.vae import OpenSoraVAEDecoder
from sora.vae_blocks import SPATIAL_PART_NAMES, TEMPORAL_PART_NAMES, build_vae_parts, dynamic_axes

OPSET = 17
DTYPES = ("float32", "float16")
PRODUCER_NAME = "ondevice-sora"
# Fixed rather than torch's version: a rebuilt torch package must not change every file of a model.
PRODUCER_VERSION = "1"
MAX_LISTED = 5
NULL_CAPTION_KEY = "y_embedder.y_embedding"  # STDiT's key of the null caption that T5 layer 0 bakes in

# Example shapes for tracing. Every dynamic axis gets a size distinct from the others (and H odd, so padH = 1) so
# that a size mixed up with another cannot pass unnoticed; the graphs do not depend on these values.
EXAMPLE_FRAMES, EXAMPLE_HEIGHT, EXAMPLE_WIDTH = 4, 7, 8
EXAMPLE_VALID_TOKENS = 6
EXAMPLE_VAE_HEIGHT, EXAMPLE_VAE_WIDTH = 4, 6
CFG_BATCH = 2

Axes = Mapping[str, Mapping[int, str]]


class ExportError(ValueError):
    """A block that cannot be exported as the contract requires."""


@dataclass(frozen=True)
class BlockExport:
    """One contract block: the wrapper module to trace and everything its ONNX signature needs."""

    name: str
    kind: str
    index: int
    graph_path: str  # relative to the model folder, "/"-separated
    wrapper: nn.Module
    example: Tuple[torch.Tensor, ...]
    input_names: Tuple[str, ...]
    output_names: Tuple[str, ...]
    dynamic_axes: Axes
    # Wrapper state-dict name → checkpoint key, so initializers carry the checkpoint's names.
    checkpoint_names: Mapping[str, str]

    @property
    def component(self) -> str:
        return KIND_COMPONENT[self.kind]


@dataclass(frozen=True)
class BlockAlias:
    """A contract block served by another block's graph as it is (TDTM_i by the block pair's graph)."""

    name: str
    kind: str
    index: int

    @property
    def component(self) -> str:
        return KIND_COMPONENT[self.kind]


@dataclass(frozen=True)
class ExportUnit:
    """Blocks exported together because their weights live in one file; `aliases` name the first block's graph."""

    blocks: Tuple[BlockExport, ...]
    weights_path: str
    aliases: Tuple[BlockAlias, ...] = ()


# ============================================================================================
# Which blocks a model has, with example inputs
# ============================================================================================


Owners = Mapping[int, str]  # id(tensor) → checkpoint key


def _owners(model: nn.Module) -> Dict[int, str]:
    owners: Dict[int, str] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        owners.setdefault(id(tensor), key)  # a tied tensor keeps its first key (T5: shared.weight)
    return owners


def _checkpoint_names(wrapper: nn.Module, owners: Owners) -> Dict[str, str]:
    return {name: owners[id(t)] for name, t in wrapper.state_dict(keep_vars=True).items() if id(t) in owners}


def _contract_block(
    name: str, kind: str, index: int, wrapper: nn.Module, example: Sequence[torch.Tensor], owners: Owners
) -> BlockExport:
    """A block whose wrapper class declares INPUTS/OUTPUTS/DYNAMIC_AXES (T5 and STDiT wrappers)."""
    folder = KIND_COMPONENT[kind]
    return BlockExport(
        name, kind, index, f"{folder}/{name}.onnx", wrapper, tuple(example),
        tuple(wrapper.INPUTS), tuple(wrapper.OUTPUTS), wrapper.DYNAMIC_AXES, _checkpoint_names(wrapper, owners),
    )


def _own_file(block: BlockExport) -> ExportUnit:
    return ExportUnit((block,), block.graph_path[: -len(".onnx")] + ".data")


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def t5_units(t5: T5EncoderModel, null_caption: torch.Tensor) -> List[ExportUnit]:
    """Embedding, every layer, final norm; null_caption is STDiT's `y_embedder.y_embedding` (baked into layer 0)."""
    cfg = t5.config
    owners = {**_owners(t5), id(null_caption): NULL_CAPTION_KEY}
    gen = _seeded()
    ids = torch.zeros(1, cfg.max_length, dtype=torch.long)
    ids[0, : EXAMPLE_VALID_TOKENS - 1] = torch.randint(3, cfg.vocab_size, (EXAMPLE_VALID_TOKENS - 1,), generator=gen)
    ids[0, EXAMPLE_VALID_TOKENS - 1] = 1
    mask = additive_mask((ids != 0).long())
    hidden = torch.randn(1, cfg.max_length, cfg.d_model, generator=gen)
    bias = torch.randn(1, cfg.num_heads, cfg.max_length, cfg.max_length, generator=gen)
    ones = torch.ones(cfg.max_length, null_caption.shape[1])
    blocks = [
        _contract_block("t5embed-tokens", "t5-embed", 0, T5Embed(t5), (ids,), owners),
        _contract_block("t5block-layer0", "t5-layer", 0, T5Layer0(t5, null_caption), (hidden, mask, ones), owners),
        *(
            _contract_block(f"t5block-layer{i}", "t5-layer", i, T5Layer(t5, i), (hidden, mask, bias), owners)
            for i in range(1, cfg.num_layers)
        ),
        _contract_block("t5final-layer-norm", "t5-final-norm", 0, T5FinalNorm(t5), (hidden,), owners),
    ]
    return [_own_file(block) for block in blocks]


def stdit_units(stdit: STDiT3, one_graph_per_pair: bool = True) -> List[ExportUnit]:
    """part1, then per block pair one graph serving both ST_i and TDTM_i (ONNX), or an ST and a TDTM graph sharing
    one weight file (`one_graph_per_pair=False`: CoreML, whose converter takes no computed frame matrices and whose
    published packages are separate), then part2."""
    cfg = stdit.config
    gen = _seeded()
    _, ph, pw = cfg.patch_size
    pad_h, pad_w = -EXAMPLE_HEIGHT % ph, -EXAMPLE_WIDTH % pw
    space = (EXAMPLE_HEIGHT + pad_h) // ph * ((EXAMPLE_WIDTH + pad_w) // pw)
    tokens = EXAMPLE_FRAMES * space
    dim = cfg.hidden_size
    z = torch.randn(CFG_BATCH, cfg.in_channels, EXAMPLE_FRAMES, EXAMPLE_HEIGHT, EXAMPLE_WIDTH, generator=gen)
    mask = torch.zeros(1, cfg.model_max_length)
    mask[0, :EXAMPLE_VALID_TOKENS] = 1
    part1_inputs = (
        z,
        torch.full((CFG_BATCH,), 500.0),
        torch.randn(CFG_BATCH, 1, cfg.model_max_length, cfg.caption_channels, generator=gen),
        mask,
        torch.tensor([24.0]),
        torch.tensor([8.0 * EXAMPLE_HEIGHT]),
        torch.tensor([8.0 * EXAMPLE_WIDTH]),
        torch.tensor([pad_h]),
        torch.tensor([pad_w]),
    )
    x = torch.randn(CFG_BATCH, tokens, dim, generator=gen)
    y = torch.randn(1, CFG_BATCH * EXAMPLE_VALID_TOKENS, dim, generator=gen)
    t_mlp = torch.randn(CFG_BATCH, 6 * dim, generator=gen)
    frames = torch.tensor([EXAMPLE_FRAMES])
    attn_st = block_diagonal_mask(CFG_BATCH, tokens, EXAMPLE_VALID_TOKENS)
    attn_tdtm = block_diagonal_mask(CFG_BATCH, EXAMPLE_FRAMES // 2 * space, EXAMPLE_VALID_TOKENS)
    st_inputs, tdtm_inputs = (x, y, t_mlp, attn_st, frames), (x, y, t_mlp, attn_tdtm, frames)

    owners = _owners(stdit)
    part1 = _contract_block("stdit3_part1", "stdit-part1", 0, STDiTPart1(stdit), part1_inputs, owners)
    units = [_own_file(part1)]
    for i in range(cfg.depth):
        weights = f"stdit/stdit3_block_{i}.data"
        if one_graph_per_pair:
            # Traced with the merged mask, so that the example exercises the frame matrices' non-identity case.
            pair = STDiTBlockPair(stdit, i, tdtm="either")
            block = _contract_block(f"stdit3_ST_{i}", "stdit-st", i, pair, tdtm_inputs, owners)
            block = replace(block, graph_path=f"stdit/stdit3_block_{i}.onnx")
            units.append(ExportUnit((block,), weights, (BlockAlias(f"stdit3_TDTM_{i}", "stdit-tdtm", i),)))
            continue
        st = _contract_block(f"stdit3_ST_{i}", "stdit-st", i, STDiTBlockPair(stdit, i), st_inputs, owners)
        tdtm = _contract_block(
            f"stdit3_TDTM_{i}", "stdit-tdtm", i, STDiTBlockPair(stdit, i, tdtm=True), tdtm_inputs, owners
        )
        units.append(ExportUnit((st, tdtm), weights))
    t_cond = torch.randn(CFG_BATCH, dim, generator=gen)
    part2_inputs = (z, x, t_cond, part1_inputs[7], part1_inputs[8])
    part2 = _contract_block("stdit3_part2", "stdit-part2", 0, STDiTPart2(stdit), part2_inputs, owners)
    units.append(_own_file(part2))
    return units


def _vae_input_shapes(decoder: OpenSoraVAEDecoder) -> Dict[str, Tuple[int, ...]]:
    """Input shape of every part for one temporal and one spatial chunk, propagated through a weightless twin."""
    cfg = decoder.cfg
    twin = build_vae_parts(OpenSoraVAEDecoder(cfg, device="meta"))
    x = torch.zeros(
        1, cfg.temporal.latent_channels, cfg.micro_z_frame_size, EXAMPLE_VAE_HEIGHT, EXAMPLE_VAE_WIDTH, device="meta"
    )
    shapes = {}
    with torch.no_grad():
        for name, part in twin:
            if name == SPATIAL_PART_NAMES[0]:
                x = x[:, :, : cfg.micro_batch_size]
            shapes[name] = tuple(x.shape)
            x = part(x)
    return shapes


def vae_units(decoder: OpenSoraVAEDecoder) -> List[ExportUnit]:
    """The 18 parts in contract order; the decoder's scale/shift buffers must hold real values already."""
    shapes = _vae_input_shapes(decoder)
    owners = _owners(decoder)
    gen = _seeded()
    units = []
    for name, part in build_vae_parts(decoder):
        temporal = name in TEMPORAL_PART_NAMES
        kind, names = ("vae-temporal", TEMPORAL_PART_NAMES) if temporal else ("vae-spatial", SPATIAL_PART_NAMES)
        example = (torch.randn(shapes[name], generator=gen),)
        block = BlockExport(
            name, kind, names.index(name), f"vae/{name}.onnx", part, example, ("latents",), ("output",),
            dynamic_axes(name), _checkpoint_names(part, owners),
        )
        units.append(_own_file(block))
    return units


def model_units(
    t5: T5EncoderModel, stdit: STDiT3, vae: OpenSoraVAEDecoder, one_graph_per_pair: bool = True
) -> List[ExportUnit]:
    """Every block of a model in pipeline order (the order of the manifest); stdit_units says what
    `one_graph_per_pair` is."""
    return t5_units(t5, stdit.y_embedder.y_embedding) + stdit_units(stdit, one_graph_per_pair) + vae_units(vae)


# ============================================================================================
# Tracing and normalising one graph
# ============================================================================================


def _trace(block: BlockExport) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # A TracerWarning means a tensor became a Python constant: a dynamic size would be frozen into the graph.
        warnings.simplefilter("error", torch.jit.TracerWarning)
        # Emitted for F.interpolate's Resize in torch 1.13; the exported node is correct.
        warnings.filterwarnings("ignore", message="The shape inference of prim::Constant")
        torch.onnx.export(
            block.wrapper,
            block.example,
            buffer,
            input_names=list(block.input_names),
            output_names=list(block.output_names),
            dynamic_axes={name: dict(axes) for name, axes in block.dynamic_axes.items()},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    model = onnx.ModelProto()
    model.ParseFromString(buffer.getbuffer())  # no copy of the serialized bytes (0.8 GB for a T5-XXL layer)
    return model


def _set_output_dims(model: onnx.ModelProto, block: BlockExport, outputs: Sequence[torch.Tensor]) -> None:
    """Static output sizes where torch's shape inference gave up (`Addoutput_dim_2`): every axis not declared
    dynamic has the size of the example output; declared axes keep their names."""
    for value, example in zip(model.graph.output, outputs):
        declared = block.dynamic_axes.get(value.name, {})
        shape = value.type.tensor_type.shape
        shape.ClearField("dim")
        for axis, size in enumerate(example.shape):
            dim = shape.dim.add()
            if axis in declared:
                dim.dim_param = declared[axis]
            else:
                dim.dim_value = size


ContentKey = Tuple[str, str]  # (numpy dtype, sha256 of the bytes): a digest, so an index of a 0.8 GB block stays small


def _content_key(array: np.ndarray) -> ContentKey:
    return array.dtype.str, hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def _content_index(state: Mapping[str, torch.Tensor]) -> Dict[ContentKey, Tuple[str, Tuple[int, ...]]]:
    """Content → (name, shape) of every state-dict tensor and of every matrix's transpose (`name.T`)."""
    index: Dict[ContentKey, Tuple[str, Tuple[int, ...]]] = {}
    for name in sorted(state, reverse=True):  # reversed, so that the alphabetically first name wins a tie
        array = state[name].detach().cpu().numpy()
        index[_content_key(array)] = (name, array.shape)
        if array.ndim == 2:
            index[_content_key(array.T)] = (f"{name}.T", array.T.shape)
    return index


def _derived_name(tensor: TensorProto, index: Mapping[ContentKey, Tuple[str, Tuple[int, ...]]]) -> str:
    """A folded constant named after the tensor it holds: `w`, `w.T`, `w.1x6x64` (reshaped), else by content."""
    key = _content_key(numpy_helper.to_array(tensor))
    dims = tuple(tensor.dims)
    if key not in index:
        digest = hashlib.sha256(repr((key, dims)).encode()).hexdigest()
        return f"const.{digest[:16]}"
    name, shape = index[key]
    return name if tuple(shape) == dims else f"{name}.{'x'.join(map(str, dims))}"


def _same_tensor(a: TensorProto, b: TensorProto) -> bool:
    return list(a.dims) == list(b.dims) and _content_key(numpy_helper.to_array(a)) == _content_key(
        numpy_helper.to_array(b)
    )


def _name_initializers(model: onnx.ModelProto, block: BlockExport) -> None:
    """Checkpoint keys for the initializers torch names after the wrapper's state dict; content-derived names for
    those it names by a counter (`onnx::MatMul_744`); equal ones merged."""
    graph = model.graph
    names = block.checkpoint_names
    state = {names.get(name, name): tensor for name, tensor in block.wrapper.state_dict().items()}
    index = _content_index(state) if any(tensor.name not in names for tensor in graph.initializer) else {}
    renames: Dict[str, str] = {}
    first: Dict[str, TensorProto] = {}
    duplicates = []
    for position, tensor in enumerate(graph.initializer):
        name = names[tensor.name] if tensor.name in names else _derived_name(tensor, index)
        if name != tensor.name:
            renames[tensor.name] = name
        if name not in first:
            first[name] = tensor
        elif _same_tensor(first[name], tensor):
            duplicates.append(position)
        else:
            raise ExportError(f"{block.name}: two different initializers would both be named {name!r}")
    for position in reversed(duplicates):
        del graph.initializer[position]
    for tensor in graph.initializer:
        tensor.name = renames.get(tensor.name, tensor.name)
    rename_inputs(graph, renames)


def _check_flat(graph: onnx.GraphProto, block: str) -> None:
    """Renaming walks the top-level graph only; a control-flow subgraph would hide references from it."""
    nested = [node.name for node in graph.node if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute)]
    if nested:
        raise ExportError(f"{block}: graph has control-flow nodes with subgraphs ({nested[:MAX_LISTED]})")


def _fix_metadata(model: onnx.ModelProto, block: str) -> None:
    model.producer_name = PRODUCER_NAME
    model.producer_version = PRODUCER_VERSION
    model.doc_string = ""
    model.graph.name = block
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""
    for tensor in model.graph.initializer:
        tensor.doc_string = ""


def export_graph(block: BlockExport) -> onnx.ModelProto:
    """Traces one block into a checked, normalised float32 graph with all weights inline."""
    with torch.no_grad():
        outputs = block.wrapper(*block.example)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    model = _trace(block)
    _check_flat(model.graph, block.name)
    _set_output_dims(model, block, outputs)
    _name_initializers(model, block)
    _fix_metadata(model, block.name)
    onnx.checker.check_model(model)
    return model


# ============================================================================================
# the shared weight file of a unit, writing
# ============================================================================================


def _shared_weights(models: Sequence[onnx.ModelProto], names: Sequence[str]) -> List[TensorProto]:
    """The weights of the first graph, after checking that every other graph has exactly the same ones."""
    first = weights_of(models[0])
    expected = {tensor.name: tensor for tensor in first}
    for model, name in zip(models[1:], names[1:]):
        found = {tensor.name: tensor for tensor in weights_of(model)}
        differing = sorted(set(expected) ^ set(found))
        differing += sorted(key for key in set(expected) & set(found) if not _same_tensor(expected[key], found[key]))
        if differing:
            raise ExportError(
                f"{names[0]} and {name} cannot share a weight file: their weights differ ({differing[:MAX_LISTED]})"
            )
    return first


def _relative(path: Path, start: Path) -> str:
    return path.relative_to(start).as_posix()


def export_unit(unit: ExportUnit, out_dir: Path, dtype: str = "float32") -> List[BlockSpec]:
    """Exports the blocks of one unit into out_dir and returns their manifest entries."""
    if dtype not in DTYPES:
        raise ExportError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    names = [block.name for block in unit.blocks]
    models = [export_graph(block) for block in unit.blocks]
    if dtype == "float16":
        for model, name in zip(models, names):
            weights_to_float16(model, name)
    weights = _shared_weights(models, names)
    weights_path = out_dir / unit.weights_path
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    files: Tuple[BlockFile, ...] = ()
    if weights:
        layout = write_weights(weights_path, weights)
        files = (BlockFile(unit.weights_path, "weights"),)
    specs = []
    for block, model in zip(unit.blocks, models):
        graph_path = out_dir / block.graph_path
        if weights:
            point_to(model, _relative(weights_path, graph_path.parent), layout)
        graph_path.write_bytes(model.SerializeToString())
        inputs, outputs = io_specs_from_onnx(graph_path)
        specs.append(BlockSpec(
            block.name, block.component, block.kind, block.index,
            (BlockFile(block.graph_path, "graph"),) + files, inputs, outputs, dtype=dtype,
        ))
    served = specs[0]
    specs += [replace(served, name=a.name, component=a.component, kind=a.kind, index=a.index) for a in unit.aliases]
    return specs


def export_units(units: Sequence[ExportUnit], out_dir: Path, dtype: str = "float32") -> List[BlockSpec]:
    return [spec for unit in units for spec in export_unit(unit, Path(out_dir), dtype)]
