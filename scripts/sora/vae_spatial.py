"""Decoder path of the SDXL 2-D VAE (diffusers `AutoencoderKL`) that Open-Sora VAE v1.2 wraps.

Attribute names mirror diffusers 0.27 (the version Open-Sora 1.2 pins), so `state_dict()` keys match
`spatial_vae.module.*` of the released checkpoint: `post_quant_conv`, `decoder.conv_in`,
`decoder.mid_block.{resnets.0, attentions.0, resnets.1}`, `decoder.up_blocks.{i}.resnets.{j}`,
`decoder.up_blocks.{i}.upsamplers.0.conv`, `decoder.conv_norm_out`, `decoder.conv_out`. The attention uses the
current diffusers names (`group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0`): the checkpoint was saved from a
diffusers 0.27 module, which renames the old `query/key/value/proj_attn` weights when it loads them.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .vae_config import SpatialVAEConfig
from .vae_temporal import GroupNorm


class ResnetBlock2D(nn.Module):
    """diffusers ResnetBlock2D without time embedding: norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus
    a 1×1 conv_shortcut when channels change. Dropout is inference-inert and omitted."""

    def __init__(self, in_channels: int, out_channels: int, cfg: SpatialVAEConfig, device=None):
        super().__init__()
        groups, eps = cfg.norm_num_groups, cfg.norm_eps
        self.norm1 = GroupNorm(groups, in_channels, eps=eps, device=device)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, device=device)
        self.norm2 = GroupNorm(groups, out_channels, eps=eps, device=device)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, device=device)
        if in_channels != out_channels:
            self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1, device=device)
        else:
            self.conv_shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return shortcut + h


class SpatialSelfAttention(nn.Module):
    """diffusers `Attention` as built by UNetMidBlock2D for the VAE: one head of width C over the H·W
    positions of each frame, GroupNorm in front, residual added, softmax scale C^-1/2."""

    def __init__(self, channels: int, cfg: SpatialVAEConfig, device=None):
        super().__init__()
        self.group_norm = GroupNorm(cfg.norm_num_groups, channels, eps=cfg.norm_eps, device=device)
        self.to_q = nn.Linear(channels, channels, device=device)
        self.to_k = nn.Linear(channels, channels, device=device)
        self.to_v = nn.Linear(channels, channels, device=device)
        # diffusers keeps a Dropout at to_out[1]; only index 0 carries weights.
        self.to_out = nn.ModuleList([nn.Linear(channels, channels, device=device)])
        self.scale = channels**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.group_norm(x).flatten(2).transpose(1, 2)  # B, H·W, C
        q = self.to_q(tokens)
        k = self.to_k(tokens)
        v = self.to_v(tokens)
        weights = torch.softmax(torch.matmul(q, k.transpose(1, 2)) * self.scale, dim=-1)
        out = self.to_out[0](torch.matmul(weights, v))
        return x + out.transpose(1, 2).reshape_as(x)


class UNetMidBlock2D(nn.Module):
    """resnets[0] -> attentions[0] -> resnets[1]."""

    def __init__(self, channels: int, cfg: SpatialVAEConfig, device=None):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, cfg, device) for _ in range(2)])
        self.attentions = nn.ModuleList([SpatialSelfAttention(channels, cfg, device)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        x = self.attentions[0](x)
        return self.resnets[1](x)


class Upsample2D(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 conv."""

    def __init__(self, channels: int, device=None):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpDecoderBlock2D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, add_upsample: bool, cfg: SpatialVAEConfig, device=None):
        super().__init__()
        self.resnets = nn.ModuleList(
            [
                ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, cfg, device)
                for i in range(cfg.layers_per_block + 1)
            ]
        )
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels, device)]) if add_upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class SpatialDecoder(nn.Module):
    """diffusers vae.Decoder: conv_in -> mid_block -> up_blocks (deepest channels first, all but the last
    upsample ×2) -> conv_norm_out -> SiLU -> conv_out."""

    def __init__(self, cfg: SpatialVAEConfig, device=None):
        super().__init__()
        widths = list(reversed(cfg.block_out_channels))
        self.conv_in = nn.Conv2d(cfg.latent_channels, widths[0], 3, padding=1, device=device)
        self.mid_block = UNetMidBlock2D(widths[0], cfg, device)
        previous = widths[0]
        blocks = []
        for i, width in enumerate(widths):
            blocks.append(UpDecoderBlock2D(previous, width, i < len(widths) - 1, cfg, device))
            previous = width
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = GroupNorm(cfg.norm_num_groups, previous, eps=cfg.norm_eps, device=device)
        self.conv_out = nn.Conv2d(previous, cfg.out_channels, 3, padding=1, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(x))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class SpatialVAE(nn.Module):
    """Decoder side of `AutoencoderKL`: post_quant_conv (1×1) + decoder. Frames are the batch axis."""

    def __init__(self, cfg: SpatialVAEConfig, device=None):
        super().__init__()
        self.post_quant_conv = nn.Conv2d(cfg.latent_channels, cfg.latent_channels, 1, device=device)
        self.decoder = SpatialDecoder(cfg, device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """[N, 4, h, w] latents already divided by the scaling factor -> [N, 3, 8h, 8w]."""
        return self.decoder(self.post_quant_conv(z))
