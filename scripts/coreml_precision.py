#!/usr/bin/env python3
"""What float16 compute precision costs each block kind, measured on Linux where CoreML cannot predict.

    /usr/bin/python3 scripts/coreml_precision.py [--size tiny|paper] [--json out.json]

CoreML's float16 precision (coremltools `compute_precision=FLOAT16`) stores weights as float16 and casts every
float32 input to float16, so every op reads and writes float16 tensors. That is emulated here in PyTorch: the block's
weights rounded to float16 (round to nearest even, as coremltools' numpy cast does), its inputs rounded, and the
result of every torch function rounded to float16 (a TorchFunctionMode), computing each op itself in float32. Real
float16 arithmetic inside an op (GPU accumulation) can only add error, so these numbers are a lower bound; float16
overflow (|x| > 65504 becomes inf) is reproduced exactly. Each block runs on the ONNX export's example inputs
(random, seeded), so activations of real checkpoints (T5 v1.1's large ones) are not represented.

--size tiny: the tiny model's weights (models/tiny); --size paper: the full widths (T5 v1.1 XXL layer d_model 4096,
STDiT3-XL/2 pair hidden 1152, VAE v1.2 channels) with random weights scaled like the tiny model's (2 T5 layers,
1 STDiT block pair).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from sora.configs import get_stdit3_config, get_t5_config
from sora.onnx_export import model_units
from sora.stdit3 import STDiT3
from sora.t5_encoder import T5EncoderModel
from sora.tiny_model import STDIT_GAINS, VAE_GAINS, TinyModules, _t5_gains, build_tiny_modules, init_weights
from sora.vae import OpenSoraVAEDecoder
from sora.vae_config import get_vae_config


def _to_half(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.half().float()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_half(item) for item in value)
    return value


MASK_MAGNITUDE = 1e30


class Float16Rounding(TorchFunctionMode):
    """Every float tensor a torch function returns is rounded to float16 (kept as float32 values)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return _to_half(func(*args, **(kwargs or {})))


@contextmanager
def float16_weights(module: nn.Module) -> Iterator[None]:
    saved = {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    try:
        yield
    finally:
        with torch.no_grad():
            for name, tensor in module.state_dict().items():
                tensor.copy_(saved[name])


def _outputs(module: nn.Module, inputs) -> List[torch.Tensor]:
    with torch.no_grad():
        out = module(*inputs)
    return list(out) if isinstance(out, tuple) else [out]


def block_error(module: nn.Module, inputs) -> Dict[str, float]:
    """Worst output's max |fp16 − fp32| and that over max |fp32| (inf when float16 overflowed)."""
    reference = _outputs(module, inputs)
    with float16_weights(module), Float16Rounding():
        emulated = _outputs(module, _to_half(inputs))
    worst = {"max_abs": 0.0, "relative": 0.0}
    for ref, got in zip(reference, emulated):
        if not ref.is_floating_point():
            continue
        # Masks (T5's position bias carries one) hold -FLT_MAX on purpose; in float16 that is -inf, which masks
        # the same way, so those entries are left out and only their sign is checked.
        valid = ref.abs() < MASK_MAGNITUDE
        if not torch.equal(got[~valid] < 0, ref[~valid] < 0):
            raise AssertionError("a mask entry changed sign in float16")
        diff = (got[valid] - ref[valid]).abs().max().item() if valid.any() else 0.0
        if not torch.isfinite(got[valid]).all():
            diff = float("inf")
        scale = ref[valid].abs().max().item() if valid.any() else 1.0
        worst["max_abs"] = max(worst["max_abs"], diff)
        worst["relative"] = max(worst["relative"], diff / scale if scale else diff)
    return worst


def paper_width_modules() -> TinyModules:
    """Full widths, 2 T5 layers and 1 STDiT pair, random weights initialised as the tiny model's."""
    t5 = T5EncoderModel(dataclasses.replace(get_t5_config("t5-v1_1-xxl"), num_layers=2)).eval()
    init_weights(t5, _t5_gains(t5), 1)
    stdit = STDiT3(dataclasses.replace(get_stdit3_config("STDiT3-XL/2"), depth=1)).eval()
    init_weights(stdit, STDIT_GAINS, 2)
    vae = OpenSoraVAEDecoder(get_vae_config("OpenSora-VAE-v1.2")).eval()
    init_weights(vae, VAE_GAINS, 3)
    return TinyModules(t5, stdit, vae)


def measure(modules: TinyModules) -> List[Dict[str, object]]:
    rows = []
    for unit in model_units(modules.t5, modules.stdit, modules.vae):
        for block in unit.blocks:
            error = block_error(block.wrapper, block.example)
            rows.append({"block": block.name, "kind": block.kind, **error})
            print(f"{block.name:24} {block.kind:14} max|Δ| {error['max_abs']:.3g}  relative {error['relative']:.3g}",
                  flush=True)
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "paper"), default="tiny")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    rows = measure(build_tiny_modules() if args.size == "tiny" else paper_width_modules())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
