"""The CoreML-friendly rewrites of STDiT3 and temporal-VAE spots give exactly the values of the forms they replaced.

coremltools 8.3 refused the earlier forms (x.new_ones, F.pad with tensor amounts, index_select over computed frame
indices, reshapes of rank 6–7). The earlier forms are kept here, verbatim in behaviour, as the references; every
comparison is bitwise (torch.equal), on odd and even sizes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sora.configs import get_stdit3_config
from sora.stdit3 import STDiT3, LayerNormNoAffine, PatchEmbed3D, merge_frame_pairs, unmerge_frame_pairs
from sora.stdit_blocks import STDiTPart2
from sora.vae_temporal import DepthToTime, GroupNorm


def _old_merge(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    even = 2 * torch.arange(frames[0] // 2)
    return (x.index_select(1, even) + x.index_select(1, even + 1)) / 2


def _old_unmerge(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    source = torch.minimum(torch.arange(frames[0]) // 2, frames // 2 - 1)
    return x.index_select(1, source)


def _old_unpatchify(out: torch.Tensor, batch, frames, h, w, ph, pw, channels, height, width) -> torch.Tensor:
    out = out.reshape(batch, frames, h, w, ph, pw, channels)
    out = out.permute(0, 6, 1, 2, 4, 3, 5).reshape(batch, channels, frames, h * ph, w * pw)
    return out[:, :, :, :height, :width]


def _old_depth_to_time(x: torch.Tensor, stride: int) -> torch.Tensor:
    b, c_s, t, h, w = x.shape
    x = x.reshape(b, c_s // stride, stride, t, h, w).transpose(2, 3)
    return x.reshape(b, c_s // stride, t * stride, h, w)


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(11)


@pytest.fixture(scope="module")
def tiny_stdit():
    torch.manual_seed(0)
    return STDiT3(get_stdit3_config("tiny")).eval()


def test_frame_pair_merge_matches_index_select_form():
    gen = _gen()
    for frames in range(2, 8):
        x = torch.randn(2, frames, 6, 5, generator=gen)
        count = torch.tensor([frames])
        merged = merge_frame_pairs(x)
        assert torch.equal(merged, _old_merge(x, count)), frames
        assert torch.equal(unmerge_frame_pairs(merged, count), _old_unmerge(merged, count)), frames


def test_layer_norm_without_affine_matches_new_ones_form():
    x = torch.randn(3, 7, 16, generator=_gen())
    old = F.layer_norm(x, (16,), x.new_ones(16), x.new_zeros(16), 1e-6)
    assert torch.equal(LayerNormNoAffine(16)(x), old)


def test_patch_embed_padding_matches_f_pad():
    embed = PatchEmbed3D((1, 2, 2), 4, 8)
    gen = _gen()
    for height, width in ((5, 6), (6, 5), (5, 7), (6, 6)):
        z = torch.randn(2, 4, 3, height, width, generator=gen)
        pad_h, pad_w = torch.tensor([height % 2]), torch.tensor([width % 2])
        with torch.no_grad():
            old = embed.proj(F.pad(z, (0, pad_w[0], 0, pad_h[0])))
            assert torch.equal(embed(z, pad_h, pad_w), old), (height, width)


def test_unpatchify_matches_rank7_form(tiny_stdit):
    part2 = STDiTPart2(tiny_stdit)
    cfg = tiny_stdit.config
    gen = _gen()
    for frames, height, width in ((3, 5, 6), (2, 6, 7), (1, 4, 4)):
        pad_h, pad_w = height % 2, width % 2
        h, w = (height + pad_h) // 2, (width + pad_w) // 2
        x = torch.randn(2, frames * h * w, cfg.hidden_size, generator=gen)
        t = torch.randn(2, cfg.hidden_size, generator=gen)
        z = torch.zeros(2, cfg.in_channels, frames, height, width)
        with torch.no_grad():
            new = part2(z, x, t, torch.tensor([pad_h]), torch.tensor([pad_w]))[0]
            features = tiny_stdit.final_layer(x, t)
        old = _old_unpatchify(features, 2, frames, h, w, 2, 2, cfg.out_channels, height, width)
        assert torch.equal(new, old), (frames, height, width)


def test_depth_to_time_matches_rank6_form():
    x = torch.randn(1, 12, 3, 4, 5, generator=_gen())
    assert torch.equal(DepthToTime(2)(x), _old_depth_to_time(x, 2))


def test_group_norm_on_video_matches_5d_group_norm():
    norm = GroupNorm(4, 16, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(16, generator=_gen()))
        norm.bias.copy_(torch.randn(16, generator=_gen()))
        x = torch.randn(1, 16, 5, 6, 7, generator=_gen()) * 3 + 1
        old = torch.group_norm(x, 4, norm.weight, norm.bias, 1e-5)
        assert torch.equal(norm(x), old)
