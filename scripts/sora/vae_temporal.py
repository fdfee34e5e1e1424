"""Decoder path of Open-Sora's temporal VAE (`VAE_Temporal_SD`), with the checkpoint's parameter names.

Attribute names mirror upstream so that `state_dict()` keys match `temporal_vae.*` of the released checkpoint:
`post_quant_conv.conv`, `decoder.conv1.conv`, `decoder.res_blocks.{i}`, `decoder.block_res_blocks.{level}.{i}`,
`decoder.conv_blocks.{level-1}.conv`, `decoder.norm1`, `decoder.conv_out.conv`. Every 3-D conv sits one level down
in a `.conv` attribute because upstream wraps it in `CausalConv3d`.
"""

from typing import List, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .vae_config import TemporalVAEConfig

Kernel = Union[int, Tuple[int, int, int]]


class CausalConv3d(nn.Module):
    """3-D conv whose output frame t only sees input frames <= t.

    The time axis gets k_t - 1 zero frames in front; height and width get 'same' zero padding, which nn.Conv3d
    applies itself (upstream pads all three with F.pad; zeros either way). The front frames are concatenated
    rather than F.pad-ded because torch's ONNX export of F.pad builds a runtime pads subgraph it cannot fold.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Kernel, bias: bool = True, device=None):
        super().__init__()
        kt, kh, kw = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(
            in_channels, out_channels, (kt, kh, kw), padding=(0, kh // 2, kw // 2), bias=bias, device=device
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            b, c, _, h, w = x.shape
            x = torch.cat([x.new_zeros((b, c, self.time_pad, h, w)), x], dim=2)
        return self.conv(x)


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm minus F.group_norm's Python-side batch-size check, which turns traced sizes into Python
    booleans (a TracerWarning on every export). Same parameters, same aten op.

    5-D input [B, C, T, H, W] is normalised as [B, C, T, H·W]: the same groups over the same elements in the same
    memory order (torch's kernel sees C and one flattened spatial extent either way), but coremltools lowers a
    5-D group norm through a rank-6 reshape, above CoreML's rank limit of 5.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return torch.group_norm(x.flatten(3), self.num_groups, self.weight, self.bias, self.eps).reshape(x.shape)
        return torch.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class DepthToTime(nn.Module):
    """[B, C·s, T, H, W] -> [B, C, T·s, H, W]; channel c·s + j becomes frame t·s + j (upstream einops
    "B (C ts) T H W -> B C (T ts) H W"). Sizes are read from the tensor so traces stay shape-generic; batch
    with channels and height with width are merged so that no intermediate exceeds rank 5 (CoreML's limit)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c_s, t, h, w = x.shape
        x = x.reshape(b * (c_s // self.stride), self.stride, t, h * w).transpose(1, 2)
        return x.reshape(b, c_s // self.stride, t * self.stride, h, w)


class DropLeadingFrames(nn.Module):
    """Removes the frames the encoder padded in front of each chunk (3 for 17-frame chunks)."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, self.count :]


class ResBlock3d(nn.Module):
    """GroupNorm -> SiLU -> causal conv 3³ -> GroupNorm -> SiLU -> causal conv 3³, plus a 1×1×1 shortcut conv
    when the channel count changes. Convs have no bias; group norm on 5-D input normalises each group over
    (C/groups, T, H, W), as upstream does."""

    def __init__(self, in_channels: int, out_channels: int, cfg: TemporalVAEConfig, device=None):
        super().__init__()
        self.norm1 = GroupNorm(cfg.num_groups, in_channels, eps=cfg.norm_eps, device=device)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, bias=False, device=device)
        self.norm2 = GroupNorm(cfg.num_groups, out_channels, eps=cfg.norm_eps, device=device)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, bias=False, device=device)
        if in_channels != out_channels:
            self.conv3 = CausalConv3d(in_channels, out_channels, 1, bias=False, device=device)
        else:
            self.conv3 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = x if self.conv3 is None else self.conv3(x)
        return h + shortcut


class TemporalDecoder(nn.Module):
    """`Decoder` of vae_temporal.py. Levels run from deepest (len(multipliers) - 1) to 0; leaving level i > 0
    upsamples time by 2 when temporal_downsample[i - 1] (causal conv to 2× channels, then depth-to-time)."""

    def __init__(self, cfg: TemporalVAEConfig, device=None):
        super().__init__()
        self.cfg = cfg
        levels = len(cfg.channel_multipliers)
        channels = cfg.filters * cfg.channel_multipliers[-1]
        self.conv1 = CausalConv3d(cfg.latent_channels, channels, 3, device=device)
        self.res_blocks = nn.ModuleList(
            [ResBlock3d(channels, channels, cfg, device) for _ in range(cfg.num_res_blocks)]
        )

        # Built deepest level first but indexed by level, as upstream (insert(0, ...)), so checkpoint indices match.
        level_blocks: List[nn.ModuleList] = []
        level_convs: List[nn.Module] = []
        for level in reversed(range(levels)):
            out_channels = cfg.filters * cfg.channel_multipliers[level]
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock3d(channels, out_channels, cfg, device))
                channels = out_channels
            level_blocks.insert(0, nn.ModuleList(blocks))
            if level > 0:
                level_convs.insert(0, self._make_time_upsampler(level, channels, device))
        self.block_res_blocks = nn.ModuleList(level_blocks)
        self.conv_blocks = nn.ModuleList(level_convs)
        self.depth_to_time = DepthToTime(2)

        self.norm1 = GroupNorm(cfg.num_groups, channels, eps=cfg.norm_eps, device=device)
        self.conv_out = CausalConv3d(channels, cfg.latent_channels, 3, device=device)

    def _make_time_upsampler(self, level: int, channels: int, device) -> nn.Module:
        # Upstream keeps an nn.Identity placeholder for levels without time upsampling, so later indices stay put.
        if not self.cfg.temporal_downsample[level - 1]:
            return nn.Identity()
        return CausalConv3d(channels, channels * 2, 3, device=device)

    def level_exit(self, level: int) -> List[nn.Module]:
        """Modules applied after the res blocks of `level` (> 0) to move to the next, shallower level."""
        conv = self.conv_blocks[level - 1]
        if self.cfg.temporal_downsample[level - 1]:
            return [conv, self.depth_to_time]
        return [conv]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for block in self.res_blocks:
            x = block(x)
        for level in reversed(range(len(self.block_res_blocks))):
            for block in self.block_res_blocks[level]:
                x = block(x)
            if level > 0:
                for module in self.level_exit(level):
                    x = module(x)
        return self.conv_out(F.silu(self.norm1(x)))


class TemporalVAE(nn.Module):
    """Decoder side of `VAE_Temporal`: post_quant_conv + decoder. Chunks of latent frames decode independently
    (causal padding restarts at each chunk), as in upstream's micro-frame loop."""

    def __init__(self, cfg: TemporalVAEConfig, dropped_frames: int, device=None):
        super().__init__()
        self.post_quant_conv = CausalConv3d(cfg.latent_channels, cfg.latent_channels, 1, device=device)
        self.decoder = TemporalDecoder(cfg, device)
        self.drop_leading = DropLeadingFrames(dropped_frames)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """One chunk: [B, 4, T_lat, h, w] -> [B, 4, T_lat·4 - padding, h, w] (5 latents -> 17 frames)."""
        return self.drop_leading(self.decoder(self.post_quant_conv(z)))
