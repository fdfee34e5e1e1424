"""Reads the weights of an exported model folder back into PyTorch state dicts.

The exporter (sora.onnx_export) names every initializer after the state-dict tensor it holds: the key itself, the
key with `.T` (a Linear weight that constant folding transposed) or with `.AxBxC` (a reshaped copy). Reversing
those names gives back the checkpoint, so a shipped model can be fine-tuned without the checkpoint that made it.
An initializer the exporter could only name by its content (`const.…`) holds no weight and is skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from sora.stdit3 import STDiT3
from sora.t5_encoder import T5EncoderModel
from sora.vae import OpenSoraVAEDecoder

NULL_CAPTION_KEY = "y_embedder.y_embedding"  # STDiT's null caption, which the exporter bakes into T5 layer 0
_RESHAPED = re.compile(r"^(?P<key>.+)\.(?P<dims>\d+(?:x\d+)*)$")

StateDict = Dict[str, torch.Tensor]


def _checkpoint_tensor(name: str, array: np.ndarray) -> Tuple[str, np.ndarray]:
    """Initializer name and value -> checkpoint key and value (before reshaping to the module's shape)."""
    if name.endswith(".T"):
        return name[:-2], array.T
    match = _RESHAPED.match(name)
    if match and not match.group("dims").isdigit():  # `.1x6x128`; a plain `.0` is part of a key (`mlp.0.weight`)
        return match.group("key"), array
    return name, array


def folder_state(model_dir: Path) -> Dict[str, StateDict]:
    """Component (t5, stdit, vae) -> checkpoint keys -> tensors, from every block of the manifest."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    states: Dict[str, StateDict] = {"t5": {}, "stdit": {}, "vae": {}}
    for block in manifest["blocks"]:
        graph = next(entry["path"] for entry in block["files"] if entry["role"] == "graph")
        model = onnx.load(str(model_dir / graph))
        for tensor in model.graph.initializer:
            if tensor.name.startswith("const."):
                continue
            key, array = _checkpoint_tensor(tensor.name, numpy_helper.to_array(tensor))
            component = "stdit" if key == NULL_CAPTION_KEY else block["component"]
            states[component][key] = torch.from_numpy(np.array(array, dtype=np.float32))
    return states


def load_into(module: torch.nn.Module, state: StateDict, what: str) -> None:
    """Copies `state` into `module`, reshaping each tensor to the parameter's shape; every key must be present."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{what}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    module.load_state_dict({key: state[key].reshape(own[key].shape) for key in own})


def load_folder_modules(
    model_dir: Path, t5: T5EncoderModel, stdit: STDiT3, vae: OpenSoraVAEDecoder
) -> None:
    """Fills the three modules (built with the folder's configs) with the folder's weights."""
    states = folder_state(model_dir)
    # T5's embedding is tied: exported once as `shared.weight`, listed twice in the state dict.
    load_into(t5, {**states["t5"], "encoder.embed_tokens.weight": states["t5"]["shared.weight"]}, "t5")
    load_into(stdit, states["stdit"], "stdit")
    load_into(vae, states["vae"], "vae")
