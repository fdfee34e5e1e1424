"""T5 v1.1 encoder with Hugging Face parameter names, so `DeepFloyd/t5-v1_1-xxl` loads with strict=True.

Semantics follow transformers' T5EncoderModel (reference §A.2): pre-RMSNorm residual blocks, self-attention
without 1/sqrt(d) scaling, bidirectional relative-position buckets computed once (block 0 owns the table) with
the additive padding mask folded into that bias, gated gelu_new feed-forward. Inference only: no dropout, no
fp16 clamping, no decoder.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .configs import T5Config

# Additive mask value for padding; HF builds it as (1 - mask) * finfo(float32).min.
MASK_VALUE = torch.finfo(torch.float32).min

_SHARED_KEY = "shared.weight"
_EMBED_KEY = "encoder.embed_tokens.weight"


def additive_mask(token_mask: torch.Tensor) -> torch.Tensor:
    """[B, L] 1/0 token mask → [B, 1, 1, L] additive mask (0 keeps, MASK_VALUE drops)."""
    return ((1.0 - token_mask.float()) * MASK_VALUE)[:, None, None, :]


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    # The tanh approximation exactly as HF's NewGELUActivation writes it, so results match it bit for bit.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional T5 buckets: half the buckets per direction, exact below max_exact, log-spaced above."""
    num_buckets //= 2
    buckets = (relative_position > 0).long() * num_buckets
    distance = relative_position.abs()
    max_exact = num_buckets // 2
    # Clamping keeps log() finite for the exact range, whose log-branch values are discarded by the where().
    log_ratio = torch.log(distance.clamp(min=max_exact).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class T5LayerNorm(nn.Module):
    """RMSNorm without mean subtraction or bias; the variance is accumulated in float32."""

    def __init__(self, size: int, eps: float, device: Optional[torch.device] = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size, device=device))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * x.to(self.weight.dtype)


class T5Attention(nn.Module):
    def __init__(self, config: T5Config, has_relative_attention_bias: bool, device=None) -> None:
        super().__init__()
        self.config = config
        inner = config.inner_dim
        self.q = nn.Linear(config.d_model, inner, bias=False, device=device)
        self.k = nn.Linear(config.d_model, inner, bias=False, device=device)
        self.v = nn.Linear(config.d_model, inner, bias=False, device=device)
        self.o = nn.Linear(inner, config.d_model, bias=False, device=device)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(
                config.relative_attention_num_buckets, config.num_heads, device=device
            )

    def compute_bias(self, length: int) -> torch.Tensor:
        """Relative position bias [1, heads, length, length] (query rows, key columns)."""
        positions = torch.arange(length, device=self.relative_attention_bias.weight.device)
        relative = positions[None, :] - positions[:, None]
        buckets = relative_position_bucket(
            relative, self.config.relative_attention_num_buckets, self.config.relative_attention_max_distance
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length = x.shape[0], x.shape[1]
        return x.reshape(batch, length, self.config.num_heads, self.config.d_kv).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        batch, length = hidden.shape[0], hidden.shape[1]
        q, k, v = self._heads(self.q(hidden)), self._heads(self.k(hidden)), self._heads(self.v(hidden))
        # T5 folds the 1/sqrt(d_kv) scale into its initialisation, so scores are not scaled here.
        scores = torch.matmul(q, k.transpose(3, 2)) + position_bias
        weights = F.softmax(scores.float(), dim=-1).type_as(scores)
        out = torch.matmul(weights, v).transpose(1, 2).reshape(batch, length, self.config.inner_dim)
        return self.o(out)


class T5LayerSelfAttention(nn.Module):
    def __init__(self, config: T5Config, has_relative_attention_bias: bool, device=None) -> None:
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias, device)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_eps, device)

    def forward(self, hidden: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        return hidden + self.SelfAttention(self.layer_norm(hidden), position_bias)


class T5DenseGatedActDense(nn.Module):
    def __init__(self, config: T5Config, device=None) -> None:
        super().__init__()
        self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False, device=device)
        self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False, device=device)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(gelu_new(self.wi_0(x)) * self.wi_1(x))


class T5LayerFF(nn.Module):
    def __init__(self, config: T5Config, device=None) -> None:
        super().__init__()
        self.DenseReluDense = T5DenseGatedActDense(config, device)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_eps, device)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.DenseReluDense(self.layer_norm(hidden))


class T5Block(nn.Module):
    def __init__(self, config: T5Config, has_relative_attention_bias: bool, device=None) -> None:
        super().__init__()
        self.layer = nn.ModuleList(
            [T5LayerSelfAttention(config, has_relative_attention_bias, device), T5LayerFF(config, device)]
        )

    def forward(self, hidden: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        """position_bias: [1 or B, heads, L, L], padding mask already added (HF passes it on like this)."""
        return self.layer[1](self.layer[0](hidden, position_bias))

    def position_bias(self, length: int, attention_mask: torch.Tensor) -> torch.Tensor:
        """Only block 0 owns the bias table; the result is shared by every block."""
        return self.layer[0].SelfAttention.compute_bias(length) + attention_mask


class T5Stack(nn.Module):
    def __init__(self, config: T5Config, embed_tokens: nn.Embedding, device=None) -> None:
        super().__init__()
        self.embed_tokens = embed_tokens
        self.block = nn.ModuleList([T5Block(config, i == 0, device) for i in range(config.num_layers)])
        self.final_layer_norm = T5LayerNorm(config.d_model, config.layer_norm_eps, device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embed_tokens(input_ids)
        bias = self.block[0].position_bias(input_ids.shape[1], attention_mask)
        for block in self.block:
            hidden = block(hidden, bias)
        return self.final_layer_norm(hidden)


def _fill_tied_embedding(state_dict: Dict[str, Any], prefix: str, *_hook_args: Any) -> None:
    """Accept checkpoints that store the tied token embedding under only one of its two names.

    HF's T5EncoderModel.state_dict() lists both `shared.weight` and `encoder.embed_tokens.weight` (one tensor);
    depending on the transformers version that saved it, a checkpoint may carry one or both.
    """
    shared, embed = prefix + _SHARED_KEY, prefix + _EMBED_KEY
    if shared in state_dict and embed not in state_dict:
        state_dict[embed] = state_dict[shared]
    elif embed in state_dict and shared not in state_dict:
        state_dict[shared] = state_dict[embed]


class T5EncoderModel(nn.Module):
    """forward(input_ids [B, L] int64, attention_mask [B, 1, 1, L] additive) → last hidden state [B, L, D]."""

    def __init__(self, config: T5Config, device=None) -> None:
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model, device=device)
        self.encoder = T5Stack(config, self.shared, device)
        self._register_load_state_dict_pre_hook(_fill_tied_embedding)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids, attention_mask)
