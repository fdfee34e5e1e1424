"""Per-block STDiT3 wrappers with the contract's input/output names (models/README.md, reference §A.3, §D).

Each wrapper registers the model's own submodules under their upstream attribute names (so it shares their
parameters and the exported initializers keep upstream names) and runs the same stage function as
STDiT3.forward. INPUTS/OUTPUTS/DYNAMIC_AXES describe the ONNX signature: batch, T, H, W, N and L vary.
"""

from __future__ import annotations

from typing import Dict, Literal, Tuple, Union

import torch
from torch import nn

from .stdit3 import STDiT3, frame_matrices_for_mask, stdit_block_pair, stdit_part1, stdit_part2

_LATENT_AXES = {0: "B", 2: "T", 3: "H", 4: "W"}


class STDiTPart1(nn.Module):
    """`stdit3_part1`: patch/position, timestep+fps and caption embeddings."""

    INPUTS = ("z_in", "t", "y", "mask", "fps", "height", "width", "padH", "padW")
    OUTPUTS = ("x", "outY", "t_mlp", "T", "outT")
    DYNAMIC_AXES: Dict[str, Dict[int, str]] = {
        "z_in": _LATENT_AXES,
        "t": {0: "B"},
        "y": {0: "B"},
        "x": {0: "B", 1: "N"},
        "outY": {1: "BL"},
        "t_mlp": {0: "B"},
        "outT": {0: "B"},
    }

    def __init__(self, model: STDiT3) -> None:
        super().__init__()
        self.config = model.config
        self.x_embedder = model.x_embedder
        self.t_embedder = model.t_embedder
        self.fps_embedder = model.fps_embedder
        self.t_block = model.t_block
        self.y_embedder = model.y_embedder

    def forward(self, z_in, t, y, mask, fps, height, width, padH, padW) -> Tuple[torch.Tensor, ...]:
        return stdit_part1(self, z_in, t, y, mask, fps, height, width, padH, padW)


class STDiTBlockPair(nn.Module):
    """`stdit3_ST_i` (tdtm=False) or `stdit3_TDTM_i` (tdtm=True): spatial block i then temporal block i.

    `attn` is the additive block-diagonal mask [1, 1 or heads, B·N, M], or [1, 1 or heads, B·⌊T/2⌋·S, M]
    with TDTM. Both variants register the same submodule names, so they share one set of weights.
    tdtm="either" is one graph for both names: the mask's height says which variant a call is (FrameMatrices).
    """

    INPUTS = ("x", "y", "t_mlp", "attn", "T")
    OUTPUTS = ("output",)
    DYNAMIC_AXES: Dict[str, Dict[int, str]] = {
        "x": {0: "B", 1: "N"},
        "y": {1: "M"},
        "t_mlp": {0: "B"},
        "attn": {1: "A", 2: "Q", 3: "M"},
        "output": {0: "B", 1: "N"},
    }

    def __init__(self, model: STDiT3, index: int, tdtm: Union[bool, Literal["either"]] = False) -> None:
        super().__init__()
        self.tdtm = tdtm
        self.spatial_block = model.spatial_blocks[index]
        self.temporal_block = model.temporal_blocks[index]
        # The temporal attention only holds a bound method of model.rope; registering the module here makes
        # its frequencies a named initializer of this block's graph instead of an anonymous constant.
        self.rope = model.rope

    def forward(self, x, y, t_mlp, attn, T) -> Tuple[torch.Tensor]:
        merging = frame_matrices_for_mask(x, attn, T) if self.tdtm == "either" else self.tdtm
        return (stdit_block_pair(self.spatial_block, self.temporal_block, x, y, t_mlp, attn, T, merging),)


class STDiTPart2(nn.Module):
    """`stdit3_part2`: final layer + unpatchify + crop of the H/W padding."""

    INPUTS = ("z_in", "x", "t", "padH", "padW")
    OUTPUTS = ("output",)
    DYNAMIC_AXES: Dict[str, Dict[int, str]] = {
        "z_in": _LATENT_AXES,
        "x": {0: "B", 1: "N"},
        "t": {0: "B"},
        "output": _LATENT_AXES,
    }

    def __init__(self, model: STDiT3) -> None:
        super().__init__()
        self.config = model.config
        self.final_layer = model.final_layer

    def forward(self, z_in, x, t, padH, padW) -> Tuple[torch.Tensor]:
        return (stdit_part2(self, z_in, x, t, padH, padW),)
