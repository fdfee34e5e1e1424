"""STDiT3 (Open-Sora 1.2) with upstream parameter names, so hpcai-tech/OpenSora-STDiT-v3 loads with strict=True.

The model is written as the three stages of the block contract (models/README.md, reference §A.3):
`stdit_part1` (embeddings), `stdit_block_pair` (spatial block i then temporal block i, optionally with TDTM,
reference §D) and `stdit_part2` (final layer + unpatchify). `STDiT3.forward` chains them; the per-block wrappers
in stdit_blocks.py call the same functions, so a chain of wrappers is the full model by construction.

Everything that depends on the latent size is computed from runtime tensor shapes or from the integer inputs
(`T`, `padH`, `padW`), never from Python constants, so torch.onnx.export produces shape-generic graphs.

Checkpoint keys (derived from upstream v1.2.0 opensora/models/stdit/stdit3.py + layers/blocks.py and
rotary_embedding_torch 0.5.3): `pos_embed` holds only a non-persistent buffer, so it is computed here and is not
a key. `rope.freqs` IS a key: RotaryEmbedding stores its frequencies as an nn.Parameter (requires_grad=False)
on the top-level module, and the published model.safetensors carries it (public MLX conversion code pops
"rope.freqs" from that file). The temporal attentions only hold a bound method of that module, so no
per-block rope keys exist.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .configs import STDiT3Config

# Additive mask value for key columns a query must not see (reference §A.3, BDM).
MASK_VALUE = torch.finfo(torch.float32).min
_NORM_EPS = 1e-6


# ============================================================================================
# Small layers
# ============================================================================================


def t2i_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[n] → [n, dim] sinusoid in [cos, sin] order (upstream TimestepEmbedder; GLIDE layout)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _sincos(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """[n] → [n, dim] as [sin(p·f), cos(p·f)] with f_k = 10000^(-2k/dim)."""
    inv_freq = 1.0 / torch.pow(10000.0, torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) / dim)
    angles = positions[:, None] * inv_freq[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def sincos_pos_embed_2d(dim: int, h, w, scale: torch.Tensor, base_size: torch.Tensor) -> torch.Tensor:
    """Upstream PositionEmbedding2D for an h×w patch grid → [h·w, dim], row-major tokens.

    The first half encodes the column coordinate and the second half the row coordinate (upstream's meshgrid
    puts w first). Coordinates are index / scale · base_size / n, in that operation order.
    """
    rows = torch.arange(h, dtype=torch.float32, device=scale.device) / scale * (base_size / h)
    cols = torch.arange(w, dtype=torch.float32, device=scale.device) / scale * (base_size / w)
    rows = rows[:, None].expand(h, w).reshape(-1)
    cols = cols[None, :].expand(h, w).reshape(-1)
    return torch.cat([_sincos(cols, dim // 2), _sincos(rows, dim // 2)], dim=-1)


class LayerNormNoAffine(nn.Module):
    """nn.LayerNorm(elementwise_affine=False) with identical values.

    The unit scale and zero shift are passed explicitly because torch 1.13 exports an affine-free layer_norm as
    a LayerNormalization node with an empty scale input, which the ONNX checker rejects. They are made with
    torch.ones/zeros rather than x.new_ones/new_zeros, which coremltools has no converter for.
    """

    def __init__(self, size: int, eps: float = _NORM_EPS) -> None:
        super().__init__()
        self.size = size
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(self.size, dtype=x.dtype, device=x.device)
        zeros = torch.zeros(self.size, dtype=x.dtype, device=x.device)
        return F.layer_norm(x, (self.size,), ones, zeros, self.eps)


class RMSNorm(nn.Module):
    """Upstream LlamaRMSNorm (per-head q/k norm)."""

    def __init__(self, size: int, eps: float = _NORM_EPS, device=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size, device=device))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x.to(dtype)


class RotaryEmbedding(nn.Module):
    """rotary_embedding_torch 0.5.3 RotaryEmbedding(dim), 'lang' frequencies, used via rotate_queries_or_keys."""

    def __init__(self, dim: int, theta: float = 10000.0, device=None) -> None:
        super().__init__()
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, device=device)[: dim // 2].float() / dim))
        self.freqs = nn.Parameter(freqs, requires_grad=False)

    def rotate_queries_or_keys(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate x [..., L, d] by positions 0..L-1; adjacent feature pairs (2i, 2i+1) form one rotation."""
        length = x.shape[-2]
        positions = torch.arange(length, dtype=x.dtype, device=x.device)
        angles = positions[:, None] * self.freqs[None].to(x.dtype)
        angles = torch.stack([angles, angles], dim=-1).flatten(-2)
        pairs = x.reshape(*x.shape[:-1], -1, 2)
        rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
        return x * angles.cos() + rotated * angles.sin()


class FusableTanhGelu(nn.Module):
    """GELU(approximate="tanh") written out in the order ONNX Runtime's FastGeluFusion matches.

    torch 1.13 exports nn.GELU(approximate="tanh") as 0.5 * (x * (1 + tanh(beta * (x + kappa * (x * (x * x)))))),
    which no ORT fusion recognises, so the CPU runs it as eight element-wise nodes over the MLP's 4C-wide
    activations. This is the same formula, x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) with x^3 as Pow,
    which ORT fuses into one FastGelu kernel; the values differ from nn.GELU's only in float rounding.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))
        return x * 0.5 * (1.0 + torch.tanh(inner))


def use_fusable_gelu(model: nn.Module) -> None:
    """Swaps every Mlp's activation for FusableTanhGelu (no weights change; see its docstring)."""
    for module in model.modules():
        if isinstance(module, Mlp):
            module.act = FusableTanhGelu()


class Mlp(nn.Module):
    """timm Mlp (fc1 → GELU(tanh) → fc2); its dropout/norm slots carry no parameters and are omitted."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, device=None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, device=device)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_features, out_features, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias=None) -> torch.Tensor:
    """Softmax attention on [..., heads, L, d]; scale applied to q first, as upstream does."""
    scores = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    return scores.to(torch.float32).softmax(dim=-1).to(q.dtype) @ v


class Attention(nn.Module):
    """Self-attention over the middle axis of [batch, L, C], with per-head q/k RMSNorm and optional RoPE."""

    def __init__(
        self, dim: int, num_heads: int, qk_norm: bool, rotary: Optional[Callable] = None, device=None
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, device=device)
        self.q_norm = RMSNorm(self.head_dim, device=device) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim, device=device) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, device=device)
        # A bound method of the model-level RotaryEmbedding, not a submodule: upstream keeps no per-block keys.
        self.rotary_emb = rotary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rotary_emb is not None:
            q, k = self.rotary_emb(q), self.rotary_emb(k)
        out = _attend(q, k, v, self.scale)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class MultiHeadCrossAttention(nn.Module):
    """All video tokens of all samples form one query sequence; `mask` (the BDM) keeps each on its own caption."""

    def __init__(self, dim: int, num_heads: int, device=None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_linear = nn.Linear(dim, dim, device=device)
        self.kv_linear = nn.Linear(dim, dim * 2, device=device)
        self.proj = nn.Linear(dim, dim, device=device)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [..., C] (flattened in order), cond [1, M, C], mask [1, 1|heads, tokens(x), M] → x's shape."""
        q = self.q_linear(x).reshape(1, -1, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.kv_linear(cond).reshape(1, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = _attend(q, kv[0], kv[1], self.head_dim**-0.5, mask)
        return self.proj(out.transpose(1, 2).reshape(x.shape))


class PatchEmbed3D(nn.Module):
    def __init__(self, patch_size: Tuple[int, int, int], in_channels: int, embed_dim: int, device=None) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size, device=device)

    def forward(self, z: torch.Tensor, pad_h: torch.Tensor, pad_w: torch.Tensor) -> torch.Tensor:
        """z [B, C, T, H, W] zero-padded right/bottom by pad_w/pad_h → [B, D, T, h, w]."""
        return self.proj(pad_end(pad_end(z, 4, pad_w), 3, pad_h))


def pad_end(x: torch.Tensor, axis: int, amount: torch.Tensor) -> torch.Tensor:
    """x with `amount[0]` (0 or 1) zeros appended along `axis`: the same values as F.pad.

    F.pad with a tensor-valued amount cannot be converted by coremltools, and a zero-sized zeros tensor (amount 0)
    is not something every runtime accepts; so one zero slice is always appended and the result cut to
    size + amount.
    """
    shape = list(x.shape)
    size = shape[axis]
    shape[axis] = 1
    padded = torch.cat([x, torch.zeros(shape, dtype=x.dtype, device=x.device)], dim=axis)
    return padded[(slice(None),) * axis + (slice(0, size + amount[0]),)]


class TimestepEmbedder(nn.Module):
    """Also serves as upstream's SizeEmbedder (fps_embedder): same layers, same sinusoid."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int, device=None) -> None:
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size, device=device),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, device=device),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_embedding_size))


class CaptionEmbedder(nn.Module):
    def __init__(self, in_channels: int, hidden_size: int, token_num: int, device=None) -> None:
        super().__init__()
        self.y_proj = Mlp(in_channels, hidden_size, hidden_size, device=device)
        # The learned null caption used for classifier-free guidance (persistent buffer upstream).
        self.register_buffer("y_embedding", torch.randn(token_num, in_channels, device=device) / in_channels**0.5)

    def forward(self, caption: torch.Tensor) -> torch.Tensor:
        return self.y_proj(caption)


class T2IFinalLayer(nn.Module):
    def __init__(self, hidden_size: int, num_patch: int, out_channels: int, device=None) -> None:
        super().__init__()
        self.norm_final = LayerNormNoAffine(hidden_size)
        self.linear = nn.Linear(hidden_size, num_patch * out_channels, device=device)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size, device=device) / hidden_size**0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)
        return self.linear(t2i_modulate(self.norm_final(x), shift, scale))


# ============================================================================================
# TDTM frame-pair merging (reference §D), branch-free for odd T
# ============================================================================================


# Written with strided slices, expand and reshape (rank ≤ 5) rather than index_select over computed indices:
# coremltools converts those indices to float and refuses the gather. Only copies, so values are unchanged.


def merge_frame_pairs(x: torch.Tensor) -> torch.Tensor:
    """[B, T, ...] → [B, ⌊T/2⌋, ...]: average of frames 2k and 2k+1; an odd last frame is left out."""
    odd = x[:, 1::2]  # frames 1, 3, …: ⌊T/2⌋ of them
    even = x[:, ::2][:, : odd.shape[1]]  # frames 0, 2, …, without an odd T's last frame
    return (even + odd) / 2


def unmerge_frame_pairs(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """[B, P, ...] → [B, T, ...]: frames 2k, 2k+1 copy pair k; an odd last frame copies the last pair."""
    padded = torch.cat([x, x[:, -1:]], dim=1)  # [B, P+1, ...]: a copy of the last pair for an odd last frame
    batch, count = padded.shape[0], padded.shape[1]
    rest = padded.shape[2:]
    doubled = padded.unsqueeze(2).expand(batch, count, 2, *rest).reshape(batch, 2 * count, *rest)
    return doubled[:, : frames[0]]


class FrameMatrices:
    """TDTM's merge and unmerge as matrices over the frame axis, for one graph that serves both block variants.

    With P = T (the ST variant) both are identities; with P = ⌊T/2⌋ (TDTM) `merge` [P, T] averages frames 2k and
    2k+1 and `unmerge` [T, P] copies pair k back to both, an odd last frame taking the last pair. Products with 1, ½
    and 0 are exact, so the results are those of the slicing above bit for bit, and one set of prepacked weights
    (ONNX Runtime packs a session's MatMul weights) serves both variants.
    """

    def __init__(self, frames: torch.Tensor, pairs: torch.Tensor, dtype: torch.dtype) -> None:
        group = 1 + (pairs < frames).long()  # 2 frames per merged frame under TDTM, 1 without
        pair_of_frame = torch.arange(frames) // group
        rows = torch.arange(pairs)
        self.merge_matrix = (rows[:, None] == pair_of_frame[None, :]).to(dtype) / group.to(dtype)
        self.unmerge_matrix = (torch.minimum(pair_of_frame, pairs - 1)[:, None] == rows[None, :]).to(dtype)

    @staticmethod
    def _along_frames(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x [B, F, ...] → [B, rows of matrix, ...]."""
        batch, rest = x.shape[0], x.shape[2:]
        mixed = torch.matmul(matrix, x.reshape(batch, x.shape[1], -1))
        return mixed.reshape(batch, matrix.shape[0], *rest)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        return self._along_frames(self.merge_matrix, x)

    def unmerge(self, x: torch.Tensor) -> torch.Tensor:
        return self._along_frames(self.unmerge_matrix, x)


def frame_matrices_for_mask(x: torch.Tensor, attn: torch.Tensor, frames: torch.Tensor) -> FrameMatrices:
    """The variant a block call is, read from its mask: B·T·S query rows for ST, B·⌊T/2⌋·S for TDTM."""
    batch, tokens = x.shape[0], x.shape[1]
    space = tokens // frames[0]
    pairs = attn.shape[2] // (batch * space)
    return FrameMatrices(frames[0], pairs, x.dtype)


# ============================================================================================
# Blocks and model
# ============================================================================================


class STDiT3Block(nn.Module):
    def __init__(self, config: STDiT3Config, temporal: bool, rope: Optional[RotaryEmbedding], device=None) -> None:
        super().__init__()
        dim = config.hidden_size
        self.temporal = temporal
        self.norm1 = LayerNormNoAffine(dim)
        rotary = rope.rotate_queries_or_keys if rope is not None else None
        self.attn = Attention(dim, config.num_heads, config.qk_norm, rotary, device=device)
        self.cross_attn = MultiHeadCrossAttention(dim, config.num_heads, device=device)
        self.norm2 = LayerNormNoAffine(dim)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), dim, device=device)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim, device=device) / dim**0.5)

    def _self_attend(self, h: torch.Tensor) -> torch.Tensor:
        """h [B, F, S, C]: temporal blocks attend along F per location, spatial blocks along S per frame."""
        batch, frames, space, dim = h.shape
        if self.temporal:
            seq = h.permute(0, 2, 1, 3).reshape(batch * space, frames, dim)
            return self.attn(seq).reshape(batch, space, frames, dim).permute(0, 2, 1, 3)
        return self.attn(h.reshape(batch * frames, space, dim)).reshape(batch, frames, space, dim)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        t_mlp: torch.Tensor,
        attn_mask: torch.Tensor,
        frames: torch.Tensor,
        tdtm: Union[bool, FrameMatrices] = False,
    ) -> torch.Tensor:
        """x [B, N, C]; y [1, M, C]; t_mlp [B, 6C]; attn_mask = BDM over B·N (or B·⌊T/2⌋·S with tdtm); frames int64 [1].

        TDTM (forwardTDTM): modulation, gates, residuals, norms and the MLP stay at full resolution; frame pairs
        are merged right before self-attention (on the modulated tokens) and before cross-attention (on the
        residual stream), and each result is copied back to both frames of its pair. `tdtm` given as
        FrameMatrices merges through them, which also covers the unmerged variant.
        """
        batch, tokens, dim = x.shape
        space = tokens // frames[0]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table[None] + t_mlp.reshape(batch, 6, dim)
        ).chunk(6, dim=1)

        h = t2i_modulate(self.norm1(x), shift_msa, scale_msa).reshape(batch, frames[0], space, dim)
        if isinstance(tdtm, FrameMatrices):
            h = tdtm.unmerge(self._self_attend(tdtm.merge(h)))
        elif tdtm:
            h = unmerge_frame_pairs(self._self_attend(merge_frame_pairs(h)), frames)
        else:
            h = self._self_attend(h)
        x = x + gate_msa * h.reshape(batch, tokens, dim)

        x_frames = x.reshape(batch, frames[0], space, dim)
        if isinstance(tdtm, FrameMatrices):
            c = tdtm.unmerge(self.cross_attn(tdtm.merge(x_frames), y, attn_mask))
        elif tdtm:
            c = unmerge_frame_pairs(self.cross_attn(merge_frame_pairs(x_frames), y, attn_mask), frames)
        else:
            c = self.cross_attn(x_frames, y, attn_mask)
        x = x + c.reshape(batch, tokens, dim)

        return x + gate_mlp * self.mlp(t2i_modulate(self.norm2(x), shift_mlp, scale_mlp))


class STDiT3(nn.Module):
    def __init__(self, config: STDiT3Config, device=None) -> None:
        super().__init__()
        self.config = config
        dim = config.hidden_size
        self.rope = RotaryEmbedding(config.head_dim, device=device)
        self.x_embedder = PatchEmbed3D(config.patch_size, config.in_channels, dim, device=device)
        self.t_embedder = TimestepEmbedder(dim, config.freq_embed_size, device=device)
        self.fps_embedder = TimestepEmbedder(dim, config.freq_embed_size, device=device)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim, device=device))
        self.y_embedder = CaptionEmbedder(config.caption_channels, dim, config.model_max_length, device=device)
        self.spatial_blocks = nn.ModuleList(
            [STDiT3Block(config, temporal=False, rope=None, device=device) for _ in range(config.depth)]
        )
        self.temporal_blocks = nn.ModuleList(
            [STDiT3Block(config, temporal=True, rope=self.rope, device=device) for _ in range(config.depth)]
        )
        patch_volume = math.prod(config.patch_size)
        self.final_layer = T2IFinalLayer(dim, patch_volume, config.out_channels, device=device)

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        fps: torch.Tensor,
        height: torch.Tensor,
        width: torch.Tensor,
        tdtm: bool = False,
    ) -> torch.Tensor:
        """One call for a batch: z [B,4,T,H,W], t [B], y [B,1,300,Cy], mask [1,300], fps/height/width [1].

        Returns [B, 8, T, H, W]. `tdtm=True` runs every block with frame-pair merging (needs T ≥ 2).
        """
        _, ph, pw = self.config.patch_size
        pad_h = torch.full((1,), (-z.shape[3]) % ph, dtype=torch.long, device=z.device)
        pad_w = torch.full((1,), (-z.shape[4]) % pw, dtype=torch.long, device=z.device)
        x, y_tokens, t_mlp, frames, t_cond = stdit_part1(self, z, t, y, mask, fps, height, width, pad_h, pad_w)

        batch, tokens = x.shape[0], x.shape[1]
        queries = (frames[0] // 2) * (tokens // frames[0]) if tdtm else tokens
        attn = block_diagonal_mask(batch, int(queries), y_tokens.shape[1] // batch, device=x.device)
        for spatial, temporal in zip(self.spatial_blocks, self.temporal_blocks):
            x = stdit_block_pair(spatial, temporal, x, y_tokens, t_mlp, attn, frames, tdtm)
        return stdit_part2(self, z, x, t_cond, pad_h, pad_w)


# ============================================================================================
# The three contract stages. `m` is any module exposing the named submodules and `config`
# (STDiT3 itself or a per-block wrapper that registered the same submodules).
# ============================================================================================


def block_diagonal_mask(batch: int, queries: int, keys: int, device=None) -> torch.Tensor:
    """BDM [1, 1, batch·queries, batch·keys]: 0 where query sample == key sample, MASK_VALUE elsewhere."""
    query_owner = torch.arange(batch, device=device).repeat_interleave(queries)
    key_owner = torch.arange(batch, device=device).repeat_interleave(keys)
    same = query_owner[:, None] == key_owner[None, :]
    return torch.where(same, 0.0, MASK_VALUE)[None, None]


def stdit_part1(m, z, t, y, mask, fps, height, width, pad_h, pad_w):
    """→ (x [B,N,C], outY [1,B·L,C], t_mlp [B,6C], T int64 [1], outT [B,C]) — contract `stdit3_part1`."""
    config = m.config
    patches = m.x_embedder(z, pad_h, pad_w)
    batch, dim, frames, h, w = patches.shape
    x = patches.flatten(3).permute(0, 2, 3, 1)  # [B, T, S, C], tokens T-major then row then column

    scale = torch.sqrt(height * width) / config.input_sq_size
    # Sizes enter tensors by multiplying ones, not through torch.full: coremltools needs full's value to be constant.
    base_size = torch.round(torch.sqrt(torch.ones(1, dtype=torch.float32, device=z.device) * (h * w)))
    x = x + sincos_pos_embed_2d(dim, h, w, scale, base_size)

    # fps is one value for the batch: its [1, C] embedding broadcasts over the B rows upstream repeats.
    t_cond = m.t_embedder(t) + m.fps_embedder(fps)
    t_mlp = m.t_block(t_cond)

    # Keep the valid caption rows of every sample (cond first), as upstream's masked_select does.
    valid = torch.nonzero(mask[0] != 0).squeeze(1)
    y_tokens = m.y_embedder(y.index_select(2, valid)).reshape(1, -1, dim)

    frame_count = torch.ones(1, dtype=torch.long, device=z.device) * frames
    return x.reshape(batch, -1, dim), y_tokens, t_mlp, frame_count, t_cond


def stdit_block_pair(spatial, temporal, x, y, t_mlp, attn, frames, tdtm: Union[bool, FrameMatrices]) -> torch.Tensor:
    """Contract `stdit3_ST_i` / `stdit3_TDTM_i`: spatial block i then temporal block i."""
    x = spatial(x, y, t_mlp, attn, frames, tdtm)
    return temporal(x, y, t_mlp, attn, frames, tdtm)


def stdit_part2(m, z, x, t_cond, pad_h, pad_w) -> torch.Tensor:
    """→ [B, out_channels, T, H, W] — contract `stdit3_part2` (z only lends its shape)."""
    config = m.config
    _, ph, pw = config.patch_size
    frames, height, width = z.shape[2], z.shape[3], z.shape[4]
    h = (height + pad_h[0]) // ph
    w = (width + pad_w[0]) // pw
    batch, channels = x.shape[0], config.out_channels
    # Feature layout of each token is (ph, pw, out_channels), as upstream's unpatchify reads it. Unpatchified one
    # patch row at a time so that no intermediate exceeds rank 5 (CoreML's limit); only copies, values unchanged.
    rows = m.final_layer(x, t_cond).reshape(batch * frames * h, w, ph, pw, channels)
    out = rows.permute(0, 2, 1, 3, 4).reshape(batch, frames, h * ph, w * pw, channels)
    return out.permute(0, 4, 1, 2, 3)[:, :, :, :height, :width]
