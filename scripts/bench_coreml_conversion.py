#!/usr/bin/env python3
"""Time, size and peak memory of converting full-size Open-Sora 1.2 blocks to CoreML, one block at a time.

    .venv-coreml/bin/python scripts/bench_coreml_conversion.py [--out DIR] [--keep] [--json out.json] [--all]

Each conversion unit runs in its own child process, as scripts/convert_checkpoint.py runs them one after another:
the full-size model is built on PyTorch's `meta` device (no memory), only the unit's own tensors are made (random
values, float32: what a checkpoint read gives), the unit is converted and saved. The parent samples the child's RSS
from /proc every 20 ms and takes the kernel's peak (ru_maxrss from wait4) when it exits.

Without --all, one unit per repeated kind is converted (T5 layer 1 stands for layers 1–23, block pair 0 for pairs
0–27) and the component totals are extrapolated from it; every VAE part is converted. Packages are written under
--out (a temporary folder by default) and deleted unless --keep: a full-size set is about 15 GB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE_KIB
    except OSError:
        return 0


def _full_size_units():
    """The conversion units of the full-size model, in pipeline order, on the meta device."""
    from convert_checkpoint import DEFAULTS
    from sora.configs import get_stdit3_config, get_t5_config
    from sora.onnx_export import stdit_units, t5_units, vae_units
    from sora.stdit3 import STDiT3
    from sora.t5_encoder import T5EncoderModel
    from sora.vae import OpenSoraVAEDecoder
    from sora.vae_config import get_vae_config

    import torch

    stdit = STDiT3(get_stdit3_config("STDiT3-XL/2"), device="meta")
    t5 = T5EncoderModel(get_t5_config("t5-v1_1-xxl"), device="meta")
    vae_cfg = get_vae_config("OpenSora-VAE-v1.2")
    vae = OpenSoraVAEDecoder(vae_cfg, device="meta")
    vae.scale, vae.shift = (torch.tensor(v).reshape(1, -1, 1, 1, 1) for v in (vae_cfg.scale, vae_cfg.shift))
    null_caption = torch.randn(stdit.config.model_max_length, stdit.config.caption_channels)
    units = t5_units(t5, null_caption) + stdit_units(stdit, one_graph_per_pair=False) + vae_units(vae)
    return units, stdit, DEFAULTS


def _materialize(unit) -> None:
    """Random float32 values for every meta tensor the unit's wrappers use (what reading the checkpoint gives)."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(0)
    for block in unit.blocks:
        for module in block.wrapper.modules():
            for name, param in list(module._parameters.items()):
                if param is not None and param.is_meta:
                    value = torch.randn(param.shape, generator=generator) * 0.02
                    module._parameters[name] = nn.Parameter(value, requires_grad=False)
            for name, buffer in list(module._buffers.items()):
                if buffer is not None and buffer.is_meta:
                    module._buffers[name] = torch.randn(buffer.shape, generator=generator)


def _convert_unit(index: int, out_dir: str) -> None:
    import logging

    logging.disable(logging.WARNING)
    from sora.coreml_export import CoreMLSettings, LatentBounds, export_coreml_unit

    units, stdit, defaults = _full_size_units()
    unit = units[index]
    _materialize(unit)
    settings = CoreMLSettings(LatentBounds.from_defaults(defaults), stdit.config.num_heads)
    export_coreml_unit(unit, Path(out_dir), settings)


def _unit_names() -> List[str]:
    units, _, _ = _full_size_units()
    return [" + ".join(block.name for block in unit.blocks) for unit in units]


def measure_unit(index: int, out_dir: Path) -> Dict[str, float]:
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_convert_unit, args=(index, str(out_dir)))
    started = time.monotonic()
    child.start()
    sampled = 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        sampled = max(sampled, _rss_kib(child.pid))
        time.sleep(0.02)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"unit {index} failed (exit {os.waitstatus_to_exitcode(status)})")
    return {"seconds": seconds, "peak_rss_gib": usage.ru_maxrss / 2**20, "sampled_rss_gib": sampled / 2**20}


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


REPEATED = {"t5block-layer": (1, 23), "stdit3_ST_": (0, 28)}  # measured unit index in its kind, how many it stands for


def _selected(names: List[str], everything: bool) -> List[Tuple[int, int]]:
    """(unit index, how many units it stands for)."""
    chosen = []
    for index, name in enumerate(names):
        for prefix, (measured, count) in REPEATED.items():
            if name.startswith(prefix) and name != "t5block-layer0":
                number = int(name.split(" ")[0][len(prefix):])
                if everything:
                    chosen.append((index, 1))
                elif number == measured:
                    chosen.append((index, count))
                break
        else:
            chosen.append((index, 1))
    return chosen


def _component(name: str) -> str:
    return "t5" if name.startswith("t5") else "stdit" if name.startswith("stdit") else "vae"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where packages are written (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the packages")
    parser.add_argument("--all", action="store_true", help="convert every unit instead of one per repeated kind")
    parser.add_argument("--json", type=Path, help="write the rows and totals as JSON")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="coreml-bench-"))
    names = _unit_names()
    rows = []
    try:
        for index, count in _selected(names, args.all):
            before = _folder_bytes(out) if out.exists() else 0
            row = {"unit": names[index], "stands_for": count, **measure_unit(index, out)}
            row["package_bytes"] = _folder_bytes(out) - before
            rows.append(row)
            print(f"{row['unit']:40} {row['seconds']:7.1f} s  peak RSS {row['peak_rss_gib']:5.2f} GiB  "
                  f"{row['package_bytes'] / 2**20:8.1f} MiB" + (f"  (×{count})" if count > 1 else ""), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    totals = {}
    for row in rows:
        total = totals.setdefault(_component(row["unit"]), {"seconds": 0.0, "package_bytes": 0, "peak_rss_gib": 0.0})
        total["seconds"] += row["seconds"] * row["stands_for"]
        total["package_bytes"] += row["package_bytes"] * row["stands_for"]
        total["peak_rss_gib"] = max(total["peak_rss_gib"], row["peak_rss_gib"])
    for component, total in totals.items():
        print(f"{component:6} {total['seconds'] / 60:6.1f} min  {total['package_bytes'] / 2**30:6.2f} GiB  "
              f"peak RSS {total['peak_rss_gib']:.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "totals": totals}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
