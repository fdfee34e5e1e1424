"""The VAE decoder split into the 18 contract parts (models/README.md; reference §A.4).

Each part is an nn.Sequential over modules of one OpenSoraVAEDecoder, so parameters are shared, not copied:
load weights into the decoder first or after, either works; but build the parts after moving the decoder to
another device/dtype, because `.to()` replaces buffers (scale, shift) rather than updating them in place.

Every part maps `latents` to `output` and traces shape-generically: frames, height and width come from the
input at run time, so the parts export to ONNX with those axes dynamic.
"""

from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from .vae import OpenSoraVAEDecoder
from .vae_config import VAEConfig

TEMPORAL_PART_NAMES = (
    "vae_temporal_part1",
    "vae_temporal_part2_1",
    "vae_temporal_part2_2",
    "vae_temporal_part2_3_1",
    "vae_temporal_part2_3_2",
    "vae_temporal_part2_3_3",
    "vae_temporal_part2_3_4",
    "vae_temporal_part2_4",
    "vae_temporal_part3",
)
SPATIAL_PART_NAMES = (
    "vae_spatial_part1",
    "vae_spatial_part2",
    "vae_spatial_part3_1",
    "vae_spatial_part3_2",
    "vae_spatial_part3_3",
    "vae_spatial_part3_4_1",
    "vae_spatial_part3_4_2",
    "vae_spatial_part3_4_3",
    "vae_spatial_part4",
)
PART_NAMES = TEMPORAL_PART_NAMES + SPATIAL_PART_NAMES

Parts = List[Tuple[str, nn.Module]]


class ScaleShift(nn.Module):
    """z · scale + shift per channel (undoes the encoder's normalisation)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale + self.shift


class DivideBy(nn.Module):
    def __init__(self, divisor: float):
        super().__init__()
        self.divisor = divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.divisor


class VideoToFrames(nn.Module):
    """[B, C, T, H, W] -> [B·T, C, H, W]: the 2-D VAE sees frames as its batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).flatten(0, 1)


class FramesToVideo(nn.Module):
    """[T, C, H, W] -> [1, C, T, H, W] (the contract's spatial chunks hold one video)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(0).transpose(1, 2)


def _check_structure(cfg: VAEConfig) -> None:
    """The part names hard-code Open-Sora's layout: 4 temporal levels of 4 res blocks, 4 spatial up blocks of
    3 resnets. Other sizes (channels, groups) are free."""
    t, s = cfg.temporal, cfg.spatial
    if len(t.channel_multipliers) != 4 or t.num_res_blocks != 4 or len(s.block_out_channels) != 4:
        raise ValueError(f"config '{cfg.name}' does not have the 4-level layout the VAE parts are defined for")
    if s.layers_per_block != 2:
        raise ValueError(f"config '{cfg.name}' must have layers_per_block 2 (3 resnets per up block)")


def _temporal_parts(decoder: OpenSoraVAEDecoder) -> List[List[nn.Module]]:
    temporal = decoder.temporal_vae
    dec = temporal.decoder
    levels = dec.block_res_blocks
    return [
        [ScaleShift(decoder.scale, decoder.shift), temporal.post_quant_conv, dec.conv1, *dec.res_blocks],
        [*levels[3], *dec.level_exit(3)],
        [*levels[2], *dec.level_exit(2)],
        [levels[1][0]],
        [levels[1][1]],
        [levels[1][2]],
        [levels[1][3], *dec.level_exit(1)],
        [*levels[0]],
        [dec.norm1, nn.SiLU(), dec.conv_out, temporal.drop_leading],
    ]


def _spatial_parts(decoder: OpenSoraVAEDecoder) -> List[List[nn.Module]]:
    vae = decoder.spatial_vae.module
    dec = vae.decoder
    last = dec.up_blocks[3]
    return [
        [VideoToFrames(), DivideBy(decoder.spatial_vae.scaling_factor), vae.post_quant_conv, dec.conv_in],
        [dec.mid_block],
        [dec.up_blocks[0]],
        [dec.up_blocks[1]],
        [dec.up_blocks[2]],
        [last.resnets[0]],
        [last.resnets[1]],
        [last.resnets[2]],
        [dec.conv_norm_out, nn.SiLU(), dec.conv_out, FramesToVideo()],
    ]


def build_vae_parts(decoder: OpenSoraVAEDecoder) -> Parts:
    """The 18 parts in contract order (temporal, then spatial), as (name, module) pairs."""
    _check_structure(decoder.cfg)
    modules = _temporal_parts(decoder) + _spatial_parts(decoder)
    return [(name, nn.Sequential(*steps)) for name, steps in zip(PART_NAMES, modules)]


def _run(parts: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for part in parts:
        x = part(x)
    return x


def decode_with_parts(parts: Parts, z: torch.Tensor, cfg: VAEConfig) -> torch.Tensor:
    """The app's schedule (VAEDecoder.swift): temporal parts per chunk of 5 latent frames, concatenate the 17-frame
    results, spatial parts per chunk of 4 frames, concatenate. Equals OpenSoraVAEDecoder.decode."""
    by_name = dict(parts)
    temporal = [by_name[name] for name in TEMPORAL_PART_NAMES]
    spatial = [by_name[name] for name in SPATIAL_PART_NAMES]
    frames = torch.cat([_run(temporal, chunk) for chunk in z.split(cfg.micro_z_frame_size, dim=2)], dim=2)
    return torch.cat([_run(spatial, chunk) for chunk in frames.split(cfg.micro_batch_size, dim=2)], dim=2)


_VIDEO_AXES = {2: "frames", 3: "height", 4: "width"}  # [1, C, T, H, W]
_FRAME_AXES = {0: "frames", 2: "height", 3: "width"}  # [T, C, H, W]


def dynamic_axes(name: str) -> Dict[str, Dict[int, str]]:
    """torch.onnx.export dynamic_axes for one part. Output axes get their own names because the parts change
    them (temporal parts multiply frames, spatial up blocks double height and width)."""
    if name not in PART_NAMES:
        raise ValueError(f"unknown VAE part '{name}'")
    takes_video = name in TEMPORAL_PART_NAMES or name == "vae_spatial_part1"
    gives_video = name in TEMPORAL_PART_NAMES or name == "vae_spatial_part4"
    inputs = _VIDEO_AXES if takes_video else _FRAME_AXES
    outputs = _VIDEO_AXES if gives_video else _FRAME_AXES
    return {
        "latents": dict(inputs),
        "output": {axis: f"out_{label}" for axis, label in outputs.items()},
    }
