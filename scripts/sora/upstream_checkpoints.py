"""Checkpoints in the upstream formats, laid out as the published Hugging Face repositories are.

    hpcai-tech/OpenSora-STDiT-v3   config.json (STDiT3Config), model.safetensors
    DeepFloyd/t5-v1_1-xxl          config.json (T5Config), model-0000i-of-0000n.safetensors + index, spiece.model,
                                   tokenizer_config.json (encoder weights only, `shared.weight` holding the embedding)
    hpcai-tech/OpenSora-VAE-v1.2   config.json (VideoAutoencoderPipelineConfig), model.safetensors (decoder and encoder)

Two kinds: `write_tiny_repositories` holds the weights of models/tiny (the converter tests and the CLI's
pull → convert → generate test reuse it, so a conversion reproduces the committed blocks); `write_random_repository`
writes seeded random weights of any named config one tensor at a time, so a full-size checkpoint (T5-XXL: 19 GB)
is written with memory for one tensor, for measuring a full-size conversion.
The config.json field names are those of the upstream classes (Open-Sora's STDiT3Config and
VideoAutoencoderPipelineConfig, transformers' T5Config); sora/config_detect.py reads them back.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from sora.configs import STDiT3Config, T5Config, get_stdit3_config, get_t5_config
from sora.jsonio import write_canonical_json
from sora.safetensors_io import (
    write_safetensors,
    write_safetensors_streamed,
    write_sharded_safetensors,
    write_sharded_safetensors_streamed,
)
from sora.stdit3 import STDiT3
from sora.t5_encoder import T5EncoderModel
from sora.tiny_model import TinyModules, build_tiny_modules
from sora.vae import ENCODER_PREFIXES, OpenSoraVAEDecoder
from sora.vae_config import VAEConfig, get_vae_config

REPOSITORIES = {"stdit": "OpenSora-STDiT-v3", "t5": "t5-v1_1-xxl", "vae": "OpenSora-VAE-v1.2"}
T5_TIED_DUPLICATE = "encoder.embed_tokens.weight"  # Hugging Face stores the tied embedding once, as shared.weight
# T5-XXL's real shards are ~10 GB; the tiny one is split small so that every block spans files.
FULL_SHARD_BYTES = 10 * 1024**3
TINY_SHARD_BYTES = 150_000
RANDOM_STD = 0.02
TOKENIZER_FIXTURE = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "spiece"


def stdit_hub_config(config: STDiT3Config) -> Dict[str, Any]:
    return {
        "architectures": ["STDiT3"],
        "model_type": "STDiT3",
        "caption_channels": config.caption_channels,
        "class_dropout_prob": config.class_dropout_prob,
        "depth": config.depth,
        "drop_path": 0.0,
        "enable_flash_attn": False,
        "enable_layernorm_kernel": False,
        "enable_sequence_parallelism": False,
        "freeze_y_embedder": False,
        "hidden_size": config.hidden_size,
        "in_channels": config.in_channels,
        "input_size": [None, None, None],
        "input_sq_size": config.input_sq_size,
        "mlp_ratio": config.mlp_ratio,
        "model_max_length": config.model_max_length,
        "num_heads": config.num_heads,
        "only_train_temporal": False,
        "patch_size": list(config.patch_size),
        "pred_sigma": config.out_channels == 2 * config.in_channels,
        "qk_norm": config.qk_norm,
        "skip_y_embedder": False,
        "torch_dtype": "float32",
    }


def t5_hub_config(config: T5Config) -> Dict[str, Any]:
    return {
        "architectures": ["T5EncoderModel"],
        "model_type": "t5",
        "d_ff": config.d_ff,
        "d_kv": config.d_kv,
        "d_model": config.d_model,
        "decoder_start_token_id": 0,
        "dropout_rate": 0.1,
        "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu",
        "initializer_factor": 1.0,
        "is_encoder_decoder": True,
        "layer_norm_epsilon": config.layer_norm_eps,
        "num_decoder_layers": config.num_layers,
        "num_heads": config.num_heads,
        "num_layers": config.num_layers,
        "pad_token_id": 0,
        "relative_attention_max_distance": config.relative_attention_max_distance,
        "relative_attention_num_buckets": config.relative_attention_num_buckets,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "vocab_size": config.vocab_size,
    }


def vae_hub_config(config: VAEConfig) -> Dict[str, Any]:
    return {
        "architectures": ["VideoAutoencoderPipeline"],
        "model_type": "VideoAutoencoderPipeline",
        "cal_loss": False,
        "freeze_vae_2d": False,
        "from_pretrained": None,
        "micro_frame_size": config.micro_frame_size,
        "scale": list(config.scale),
        "shift": list(config.shift),
        "vae_2d": {
            "type": "VideoAutoencoderKL",
            "from_pretrained": "PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers",
            "subfolder": "vae",
            "micro_batch_size": config.micro_batch_size,
        },
        "vae_temporal": {"type": "VAE_Temporal_SD", "from_pretrained": None},
        "torch_dtype": "float32",
    }


def encoder_stand_ins() -> Dict[str, torch.Tensor]:
    """One small tensor under every VAE encoder prefix: the released file holds both halves, the converter
    ignores the encoder, and only the key names matter for that."""
    return {f"{prefix}conv.weight": torch.full((2, 2), float(number)) for number, prefix in enumerate(ENCODER_PREFIXES)}


def copy_t5_tokenizer(folder: Path, source: Path = TOKENIZER_FIXTURE) -> None:
    """spiece.model and tokenizer_config.json as the T5 repository has them (no tokenizer.json)."""
    for name in ("spiece.model", "tokenizer_config.json"):
        shutil.copyfile(source / name, folder / name)


def write_tiny_repositories(root: Path, modules: Optional[TinyModules] = None, tokenizer: bool = True) -> SimpleNamespace:
    """The three repositories with the weights of models/tiny; returns their folders (stdit, t5, vae)."""
    modules = modules or build_tiny_modules()
    folders = SimpleNamespace(**{label: Path(root) / name for label, name in REPOSITORIES.items()})
    for folder in vars(folders).values():
        folder.mkdir(parents=True, exist_ok=True)
    write_canonical_json(folders.stdit / "config.json", stdit_hub_config(modules.stdit.config))
    write_safetensors(folders.stdit / "model.safetensors", modules.stdit.state_dict())
    write_canonical_json(folders.t5 / "config.json", t5_hub_config(modules.t5.config))
    t5 = {key: value for key, value in modules.t5.state_dict().items() if key != T5_TIED_DUPLICATE}
    write_sharded_safetensors(folders.t5, t5, max_shard_bytes=TINY_SHARD_BYTES)
    if tokenizer:
        copy_t5_tokenizer(folders.t5)
    write_canonical_json(folders.vae / "config.json", vae_hub_config(modules.vae.cfg))
    write_safetensors(folders.vae / "model.safetensors", {**modules.vae.state_dict(), **encoder_stand_ins()})
    return folders


def _meta_shapes(model: torch.nn.Module) -> Dict[str, Tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _random_tensors(
    seed: int, shapes: Mapping[str, Tuple[int, ...]], fixed: Mapping[str, torch.Tensor]
) -> Callable[[str], torch.Tensor]:
    """Seeded normal weights, one tensor per call; `fixed` names tensors given as they are."""
    rng = np.random.default_rng(seed)

    def produce(name: str) -> torch.Tensor:
        if name in fixed:
            return fixed[name]
        return torch.from_numpy(rng.standard_normal(shapes[name], dtype=np.float32) * np.float32(RANDOM_STD))

    return produce


def write_random_repository(component: str, config_name: str, folder: Path, seed: int = 0) -> Path:
    """One repository of `component` (stdit, t5, vae) with random weights of the named config, written tensor by
    tensor; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if component == "stdit":
        config = get_stdit3_config(config_name)
        shapes = _meta_shapes(STDiT3(config, device="meta"))
        hub_config, fixed = stdit_hub_config(config), {}
    elif component == "t5":
        t5_config = get_t5_config(config_name)
        shapes = _meta_shapes(T5EncoderModel(t5_config, device="meta"))
        shapes.pop(T5_TIED_DUPLICATE)
        hub_config, fixed = t5_hub_config(t5_config), {}
    elif component == "vae":
        vae_config = get_vae_config(config_name)
        shapes = _meta_shapes(OpenSoraVAEDecoder(vae_config, device="meta"))
        # The latent scale and shift are real numbers the decoder divides by, not weights to randomise.
        fixed = {"scale": torch.tensor(vae_config.scale).reshape(shapes["scale"]),
                 "shift": torch.tensor(vae_config.shift).reshape(shapes["shift"]), **encoder_stand_ins()}
        shapes.update({name: tuple(value.shape) for name, value in fixed.items()})
        hub_config = vae_hub_config(vae_config)
    else:
        raise ValueError(f"unknown component {component!r} (stdit, t5, vae)")
    produce = _random_tensors(seed, shapes, fixed)
    write_canonical_json(folder / "config.json", hub_config)
    if component == "t5":
        write_sharded_safetensors_streamed(folder, shapes, produce, FULL_SHARD_BYTES)
        copy_t5_tokenizer(folder)
    else:
        write_safetensors_streamed(folder / "model.safetensors", shapes, produce)
    return folder
