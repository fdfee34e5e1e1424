"""Chooses the named model config of a checkpoint: from its own config.json where that decides, else by its shapes.

The published repositories carry a Hugging Face `config.json` beside the weights: STDiT3Config (`model_type`
"STDiT3": depth, hidden_size, num_heads, …), T5Config ("t5": d_model, num_layers, …) and
VideoAutoencoderPipelineConfig ("VideoAutoencoderPipeline": micro_frame_size, scale, shift — no layer sizes).
Each known config whose values agree with every field the file states is a candidate; when more than one is left
(always for the VAE, whose file names no sizes) or there is no config.json, the candidates whose parameter shapes
the checkpoint holds exactly decide. A config.json of the wrong model type (a T5 folder passed as --stdit) is an
error, so swapped folders are caught before any weight is read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from sora.configs import STDIT3_CONFIGS, T5_CONFIGS
from sora.vae_config import VAE_CONFIGS

CONFIG_FILE = "config.json"


class ConfigDetectionError(ValueError):
    """No known config fits; the message names the checkpoint and what was compared."""


@dataclass(frozen=True)
class ComponentConfigs:
    """What config.json of one component looks like and how its fields map onto our config dataclasses."""

    model_type: str
    names: Sequence[str]
    # config.json field -> function of a named config giving the value that field must have
    fields: Mapping[str, Callable[[str], Any]]


def _stdit(attribute: str) -> Callable[[str], Any]:
    return lambda name: getattr(STDIT3_CONFIGS[name], attribute)


def _t5(attribute: str) -> Callable[[str], Any]:
    return lambda name: getattr(T5_CONFIGS[name], attribute)


def _vae(read: Callable[[Any], Any]) -> Callable[[str], Any]:
    return lambda name: read(VAE_CONFIGS[name])


COMPONENTS: Dict[str, ComponentConfigs] = {
    "stdit": ComponentConfigs(
        "STDiT3",
        tuple(STDIT3_CONFIGS),
        {
            field: _stdit(field)
            for field in ("depth", "hidden_size", "num_heads", "mlp_ratio", "caption_channels", "patch_size",
                          "in_channels", "model_max_length", "input_sq_size", "qk_norm")
        },
    ),
    "t5": ComponentConfigs(
        "t5",
        tuple(T5_CONFIGS),
        {
            **{field: _t5(field) for field in ("vocab_size", "d_model", "num_layers", "num_heads", "d_kv", "d_ff",
                                                "relative_attention_num_buckets", "relative_attention_max_distance")},
            "layer_norm_epsilon": _t5("layer_norm_eps"),
        },
    ),
    "vae": ComponentConfigs(
        "VideoAutoencoderPipeline",
        tuple(VAE_CONFIGS),
        {
            "micro_frame_size": _vae(lambda cfg: cfg.micro_frame_size),
            "scale": _vae(lambda cfg: cfg.scale),
            "shift": _vae(lambda cfg: cfg.shift),
        },
    ),
}


def config_file(checkpoint: Path) -> Optional[Path]:
    """config.json in the checkpoint's folder (the folder itself, or the folder of a file or index)."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    path = folder / CONFIG_FILE
    return path if path.is_file() else None


def _same(stated: Any, expected: Any) -> bool:
    if isinstance(expected, (tuple, list)):
        return isinstance(stated, (tuple, list)) and len(stated) == len(expected) and all(
            _same(a, b) for a, b in zip(stated, expected)
        )
    if isinstance(expected, bool) or isinstance(stated, bool):
        return stated is expected
    if isinstance(expected, float) or isinstance(stated, float):
        return isinstance(stated, (int, float)) and math.isclose(stated, expected, rel_tol=1e-6, abs_tol=1e-9)
    return stated == expected


def _read_config(path: Path, label: str) -> Dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigDetectionError(f"--{label} {path}: unreadable config.json ({error})") from error
    if not isinstance(config, dict):
        raise ConfigDetectionError(f"--{label} {path}: config.json is not a JSON object")
    return config


def candidates_from_config(label: str, config: Mapping[str, Any], path: Path) -> Tuple[List[str], str]:
    """Known configs agreeing with every field config.json states, and a note of the fields compared."""
    spec = COMPONENTS[label]
    model_type = config.get("model_type")
    if model_type is not None and model_type != spec.model_type:
        raise ConfigDetectionError(
            f"--{label} {path}: model_type {model_type!r}, expected {spec.model_type!r} (is this the {label} checkpoint?)"
        )
    stated = [field for field in spec.fields if field in config]
    fitting = [name for name in spec.names if all(_same(config[field], spec.fields[field](name)) for field in stated)]
    compared = ", ".join(f"{field} {json.dumps(config[field])}" for field in stated) or "no size fields"
    if not fitting:
        raise ConfigDetectionError(
            f"--{label} {path}: {compared} match none of the known configs ({', '.join(spec.names)})"
        )
    return fitting, compared


def choose_config(label: str, checkpoint: Path, fits: Callable[[str], bool]) -> Tuple[str, str]:
    """(config name, how it was chosen). `fits(name)` says whether the checkpoint holds that config's exact shapes."""
    path = config_file(checkpoint)
    names = list(COMPONENTS[label].names)
    reason = "no config.json"
    if path is not None:
        names, compared = candidates_from_config(label, _read_config(path, label), path)
        reason = f"config.json: {compared}"
        if len(names) == 1:
            return names[0], reason
    fitting = [name for name in names if fits(name)]
    if len(fitting) == 1:
        return fitting[0], f"{reason}; parameter shapes"
    listed = ", ".join(names)
    problem = "fits none of" if not fitting else "fits more than one of"
    raise ConfigDetectionError(
        f"--{label} {checkpoint}: the checkpoint {problem} the configs left by {reason} ({listed}); "
        f"name one with --config-{label}"
    )
