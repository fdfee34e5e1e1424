"""Training-only encoders for the shapes VAE: frames -> 2-D latents -> temporal latents.

Only the decoders are part of the model contract (the runtime never encodes), so these need not follow Open-Sora's
encoder layout; they are small strided conv stacks sized for 64×64 flat-colour frames. The latent is
deterministic with fixed-variance noise added in training (sora.shapes_training), which keeps the decoders tolerant
of the imprecise latents a diffusion model produces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LATENT_CHANNELS = 4


def _norm_act(channels: int, groups: int) -> list:
    return [nn.GroupNorm(groups, channels), nn.SiLU()]


class SpatialEncoder(nn.Module):
    """[N, 3, H, W] in [-1, 1] -> [N, 4, H/8, W/8]."""

    def __init__(self, width: int = 64, groups: int = 4):
        super().__init__()
        w4 = width // 4
        self.net = nn.Sequential(
            nn.Conv2d(3, w4, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(w4, width // 2, 4, stride=2, padding=1),
            *_norm_act(width // 2, groups),
            nn.Conv2d(width // 2, width, 4, stride=2, padding=1),
            *_norm_act(width, groups),
            nn.Conv2d(width, width, 4, stride=2, padding=1),
            *_norm_act(width, groups),
            nn.Conv2d(width, width, 3, padding=1),
            *_norm_act(width, groups),
            nn.Conv2d(width, LATENT_CHANNELS, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TemporalEncoder(nn.Module):
    """[B, 4, 17k, h, w] -> [B, 4, 5k, h, w] per 17-frame chunk: 3 zero frames in front (as Open-Sora's temporal
    encoder pads), then two stride-2 temporal convolutions."""

    def __init__(self, width: int = 64, groups: int = 4, front_pad: int = 3):
        super().__init__()
        self.front_pad = front_pad
        self.net = nn.Sequential(
            nn.Conv3d(LATENT_CHANNELS, width // 2, 3, padding=1),
            nn.SiLU(),
            nn.Conv3d(width // 2, width, (4, 3, 3), stride=(2, 1, 1), padding=(1, 1, 1)),
            *_norm_act(width, groups),
            nn.Conv3d(width, width, (4, 3, 3), stride=(2, 1, 1), padding=(1, 1, 1)),
            *_norm_act(width, groups),
            nn.Conv3d(width, width, 3, padding=1),
            *_norm_act(width, groups),
            nn.Conv3d(width, LATENT_CHANNELS, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(F.pad(x, (0, 0, 0, 0, self.front_pad, 0)))
