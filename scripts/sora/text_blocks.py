"""Per-block T5 wrappers with the contract's input/output names (models/README.md, reference §A.2).

Each wrapper registers the encoder's own submodules, so it shares their parameters, and returns a tuple in
contract output order. INPUTS/OUTPUTS/DYNAMIC_AXES describe the ONNX signature; every T5 tensor has the fixed
contract shape [1, 300, …], so no axis is dynamic.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn

from .t5_encoder import T5EncoderModel


class T5Embed(nn.Module):
    """`t5embed-tokens`: input_ids int64 [1,300] → output [1,300,D]."""

    INPUTS = ("input_ids",)
    OUTPUTS = ("output",)
    DYNAMIC_AXES: Dict[str, Dict[int, str]] = {}

    def __init__(self, model: T5EncoderModel) -> None:
        super().__init__()
        self.embed_tokens = model.shared

    def forward(self, input_ids: torch.Tensor) -> Tuple[torch.Tensor]:
        return (self.embed_tokens(input_ids),)


class T5Layer0(nn.Module):
    """`t5block-layer0`: also emits the shared position bias and the STDiT null caption (yNull)."""

    INPUTS = ("hidden_states", "attention_mask", "y_embedding")
    OUTPUTS = ("output_hidden_states", "output_position_bias", "yNull")
    DYNAMIC_AXES: Dict[str, Dict[int, str]] = {}

    def __init__(self, model: T5EncoderModel, null_caption: torch.Tensor) -> None:
        """null_caption: STDiT `y_embedder.y_embedding` [300, Cy] (shared, not copied)."""
        super().__init__()
        self.block = model.encoder.block[0]
        # Named apart from the `y_embedding` input: ONNX initializer and input names must differ.
        self.register_buffer("stdit_y_embedding", null_caption)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, y_embedding: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position_bias = self.block.position_bias(hidden_states.shape[1], attention_mask)
        return self.block(hidden_states, position_bias), position_bias, y_embedding * self.stdit_y_embedding


class T5Layer(nn.Module):
    """`t5block-layer{i}`, i ≥ 1."""

    INPUTS = ("hidden_states", "attention_mask", "position_bias")
    OUTPUTS = ("output_hidden_states",)
    DYNAMIC_AXES: Dict[str, Dict[int, str]] = {}

    def __init__(self, model: T5EncoderModel, index: int) -> None:
        super().__init__()
        if index < 1:
            raise ValueError("T5Layer is for layers ≥ 1; layer 0 is T5Layer0")
        self.block = model.encoder.block[index]

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, position_bias: torch.Tensor
    ) -> Tuple[torch.Tensor]:
        # position_bias already holds the padding mask (HF semantics), so re-applying it changes no value:
        # masked columns are exactly MASK_VALUE either way. It keeps `attention_mask` a live graph input,
        # which torch.onnx.export would otherwise drop from the contract signature.
        bias = torch.where(attention_mask < 0, attention_mask, position_bias)
        return (self.block(hidden_states, bias),)


class T5FinalNorm(nn.Module):
    """`t5final-layer-norm`."""

    INPUTS = ("input",)
    OUTPUTS = ("output",)
    DYNAMIC_AXES: Dict[str, Dict[int, str]] = {}

    def __init__(self, model: T5EncoderModel) -> None:
        super().__init__()
        self.final_layer_norm = model.encoder.final_layer_norm

    def forward(self, input: torch.Tensor) -> Tuple[torch.Tensor]:  # noqa: A002 - contract input name
        return (self.final_layer_norm(input),)
