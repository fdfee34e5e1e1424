"""The shipped tiny model (models/tiny): the `tiny` configs with seeded random weights.

Random weights at default scales would not survive the pipeline: T5 without score scaling saturates its softmax,
classifier-free guidance multiplies the conditional/unconditional difference by 7 at each of 30 Euler steps, and
the VAE's latent de-normalisation multiplies by ~3 before a long residual stack. The gains below keep every block's
activations O(1) from prompt to pixels (scripts/tests/test_tiny_model.py checks it) while the caption still
visibly changes the velocity, so parity tests compare non-trivial numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from sora.configs import get_stdit3_config, get_t5_config
from sora.manifest import Defaults
from sora.stdit3 import STDiT3, RMSNorm, RotaryEmbedding
from sora.t5_encoder import T5EncoderModel, T5LayerNorm
from sora.vae import OpenSoraVAEDecoder
from sora.vae_config import get_vae_config

CONFIG_NAME = "tiny"
MODEL_NAME = "tiny"
DESCRIPTION = (
    "Open-Sora 1.2 architecture (T5 v1.1 encoder, STDiT3, VAE v1.2 decoder) at a tiny size with seeded random "
    "weights, for tests only: its videos are structured noise, not pictures of the prompt. "
    "Regenerate with scripts/make_tiny_model.py."
)
DEFAULTS = Defaults(
    steps=30,
    cfg_scale=7.0,
    fps=24,
    aesthetic_score=6.5,
    resolution="256x256",
    num_frames=17,
    resolutions=("128x128", "192x192", "256x256"),
    num_frames_choices=(17, 34, 51, 68),
)
SEEDS = {"t5": 1, "stdit": 2, "vae": 3}
NORM_WEIGHT_JITTER = 0.1
BIAS_STD = 0.02

NORMS = (nn.GroupNorm, T5LayerNorm, RMSNorm)


@dataclass(frozen=True)
class TinyModules:
    t5: T5EncoderModel
    stdit: STDiT3
    vae: OpenSoraVAEDecoder


def _t5_gains(model: T5EncoderModel) -> Mapping[str, float]:
    return {
        # T5 does not scale attention scores by 1/sqrt(d_kv); like HF's init, q's weights carry that factor.
        "SelfAttention.q.weight": model.config.d_kv**-0.5,
        "relative_attention_bias.weight": 0.5,
    }


STDIT_GAINS = {
    # Only cross-attention sees the caption: a small projection keeps |v_cond - v_uncond| near 0.1, which CFG 7
    # turns into a visible but bounded correction.
    "cross_attn.proj.weight": 0.2,
    # Velocities of about the latent's own size, so 30 Euler steps (sum of dt = 1) move z by O(1).
    "final_layer.linear.weight": 0.7,
}
VAE_GAINS = {
    # Undoes the ~3x of the latent de-normalisation (scale 2.3-3.9) that precedes this 1x1x1 conv.
    "temporal_vae.post_quant_conv.conv.weight": 1 / 3,
    # Likewise for the 2-D decoder's input, which Open-Sora divides by its scaling factor 0.18215 first.
    "spatial_vae.module.post_quant_conv.weight": 0.2,
    # Residual branches: half-size updates keep the un-normalised residual stream from growing level by level.
    "conv2.weight": 0.5,
    "conv2.conv.weight": 0.5,
    "spatial_vae.module.decoder.conv_out.weight": 0.5,
}


def _gain(name: str, gains: Mapping[str, float]) -> float:
    return next((gain for suffix, gain in gains.items() if name.endswith(suffix)), 1.0)


def _init_parameter(
    module: nn.Module, name: str, param: torch.Tensor, gain: float, gen: torch.Generator
) -> torch.Tensor:
    noise = torch.randn(param.shape, generator=gen)
    if isinstance(module, NORMS):
        return (1.0 + NORM_WEIGHT_JITTER * noise) if name == "weight" else BIAS_STD * noise
    if isinstance(module, nn.Embedding):
        return gain * noise
    if name == "bias":
        return BIAS_STD * noise
    fan_in = param[0].numel()
    return gain / math.sqrt(fan_in) * noise


def init_weights(model: nn.Module, gains: Mapping[str, float], seed: int) -> None:
    """Overwrites every learned parameter: unit-gain fan-in scaling unless a name suffix in `gains` says otherwise;
    norms near identity. RoPE frequencies are computed, not learned, and stay as built."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module_name, module in model.named_modules():
            if isinstance(module, RotaryEmbedding):
                continue
            for name, param in module.named_parameters(recurse=False):
                full_name = f"{module_name}.{name}" if module_name else name
                param.copy_(_init_parameter(module, name, param, _gain(full_name, gains), gen))


def build_tiny_modules() -> TinyModules:
    """The tiny model's three modules in eval mode; the same weights on every call and machine."""
    t5 = T5EncoderModel(get_t5_config(CONFIG_NAME)).eval()
    init_weights(t5, _t5_gains(t5), SEEDS["t5"])
    stdit = STDiT3(get_stdit3_config(CONFIG_NAME)).eval()
    init_weights(stdit, STDIT_GAINS, SEEDS["stdit"])
    with torch.no_grad():
        # The learned null caption stands in for a T5 output, whose final RMSNorm gives unit-scale features.
        null = stdit.y_embedder.y_embedding
        null.copy_(torch.randn(null.shape, generator=torch.Generator().manual_seed(SEEDS["stdit"] + 100)))
    vae = OpenSoraVAEDecoder(get_vae_config(CONFIG_NAME)).eval()
    init_weights(vae, VAE_GAINS, SEEDS["vae"])
    return TinyModules(t5, stdit, vae)
