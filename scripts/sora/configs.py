"""Named model configurations.

Full-size values are those of the published checkpoints (DeepFloyd/t5-v1_1-xxl config.json,
hpcai-tech/OpenSora-STDiT-v3 = upstream "STDiT3-XL/2"); "tiny" is the random-weight test model of the
same architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple, TypeVar

_Config = TypeVar("_Config")


def _lookup(table: Dict[str, _Config], name: str) -> _Config:
    if name not in table:
        raise ValueError(f"unknown config '{name}'; known: {', '.join(sorted(table))}")
    return table[name]


# ============================================================================================
# T5 v1.1 text encoder
# ============================================================================================


@dataclass(frozen=True)
class T5Config:
    vocab_size: int
    d_model: int
    num_layers: int
    num_heads: int
    d_kv: int
    d_ff: int
    relative_attention_num_buckets: int
    relative_attention_max_distance: int
    layer_norm_eps: float
    max_length: int = 300

    @property
    def inner_dim(self) -> int:
        return self.num_heads * self.d_kv


T5_CONFIGS: Dict[str, T5Config] = {
    "t5-v1_1-xxl": T5Config(
        vocab_size=32128,
        d_model=4096,
        num_layers=24,
        num_heads=64,
        d_kv=64,
        d_ff=10240,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        layer_norm_eps=1e-6,
    ),
    "tiny": T5Config(
        vocab_size=512,
        d_model=64,
        num_layers=2,
        num_heads=4,
        d_kv=16,
        d_ff=128,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        layer_norm_eps=1e-6,
    ),
    # The shapes world's text encoder (sora/shapes_model.py): a word-level vocabulary of ~40 words.
    "shapes": T5Config(
        vocab_size=256,
        d_model=64,
        num_layers=3,
        num_heads=4,
        d_kv=16,
        d_ff=128,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        layer_norm_eps=1e-6,
    ),
}


def get_t5_config(name: str) -> T5Config:
    return _lookup(T5_CONFIGS, name)


# ============================================================================================
# STDiT3 diffusion transformer
# ============================================================================================


@dataclass(frozen=True)
class STDiT3Config:
    depth: int
    hidden_size: int
    num_heads: int
    mlp_ratio: float
    caption_channels: int
    patch_size: Tuple[int, int, int] = (1, 2, 2)
    in_channels: int = 4
    out_channels: int = 8  # pred_sigma: velocity + learned sigma
    model_max_length: int = 300
    input_sq_size: int = 512
    qk_norm: bool = True
    freq_embed_size: int = 256
    class_dropout_prob: float = 0.1  # training-only; kept so the config reads like upstream's

    def __post_init__(self) -> None:
        # The block contract pads only H and W (padH/padW); a temporal patch would need a T pad too.
        if self.patch_size[0] != 1:
            raise ValueError(f"temporal patch size must be 1, got {self.patch_size}")
        # PositionEmbedding2D splits the hidden size into 4 sin/cos quarters.
        if self.hidden_size % 4 != 0 or self.hidden_size % self.num_heads != 0:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by 4 and by num_heads")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


STDIT3_CONFIGS: Dict[str, STDiT3Config] = {
    "STDiT3-XL/2": STDiT3Config(depth=28, hidden_size=1152, num_heads=16, mlp_ratio=4.0, caption_channels=4096),
    "tiny": STDiT3Config(depth=4, hidden_size=64, num_heads=4, mlp_ratio=4.0, caption_channels=64),
    "shapes": STDiT3Config(depth=4, hidden_size=128, num_heads=4, mlp_ratio=4.0, caption_channels=64),
}


def get_stdit3_config(name: str) -> STDiT3Config:
    return _lookup(STDIT3_CONFIGS, name)


# ============================================================================================
# VAE — reserved: another engineer adds VAEConfig, VAE_CONFIGS and get_vae_config here.
# ============================================================================================
