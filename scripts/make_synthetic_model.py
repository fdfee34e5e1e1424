#!/usr/bin/env python3
"""Builds a synthetic model folder with a bigger STDiT than the shipped tiny one, for the CI-DL tests and benchmark.

    /usr/bin/python3 scripts/make_synthetic_model.py --out DIR [--shape test|paper] [--depth N] [--hidden H]
        [--plain-gelu]

`test`  (default): 8 STDiT block pairs, hidden 384 (~19 MB of weights per block), so memory budgets bite.
`paper`: STDiT3-XL/2 blocks (depth 28, hidden 1152, ~170 MB fp32 per block, ~4.8 GB in all), as in the paper.

Only the STDiT's size matters here, so T5, VAE and tokenizer are copied from the shipped tiny model (the manifest
loader wants a complete model). That is exact, not an approximation: T5 layer 0 bakes in the STDiT's null caption,
which is drawn from the same seed and shape as the tiny STDiT's. Weights are seeded random, so videos are noise; the
folder is made at test or bench time and never committed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from sora.dependencies import require_modules

if __name__ == "__main__":
    require_modules("scripts/make_synthetic_model.py")  # before the imports below, which need them

import torch  # noqa: E402

from sora.configs import STDiT3Config, get_stdit3_config
from sora.manifest import BlockSpec, block_spec_of, build_manifest, write_manifest
from sora.onnx_export import export_unit, stdit_units
from sora.stdit3 import STDiT3, use_fusable_gelu
from sora.tiny_model import DEFAULTS, SEEDS, STDIT_GAINS, init_weights

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = REPO_ROOT / "models" / "tiny"
SHAPES = {
    "test": dict(depth=8, hidden_size=384, num_heads=6),
    "paper": dict(depth=28, hidden_size=1152, num_heads=16),
}


def build_stdit(config: STDiT3Config) -> STDiT3:
    stdit = STDiT3(config).eval()
    init_weights(stdit, STDIT_GAINS, SEEDS["stdit"])
    with torch.no_grad():
        null = stdit.y_embedder.y_embedding
        null.copy_(torch.randn(null.shape, generator=torch.Generator().manual_seed(SEEDS["stdit"] + 100)))
    return stdit


def export_stdit(config: STDiT3Config, out_dir: Path, fusable_gelu: bool = False) -> List[BlockSpec]:
    """part1, every block pair (ST and TDTM sharing one weight file), part2."""
    stdit = build_stdit(config)
    if fusable_gelu:
        use_fusable_gelu(stdit)
    return [spec for unit in stdit_units(stdit) for spec in export_unit(unit, out_dir)]


def copy_tiny_parts(tiny_dir: Path, out_dir: Path) -> Tuple[Dict[str, Any], List[BlockSpec], List[BlockSpec]]:
    """Copies tokenizer, T5 and VAE files; returns (tiny manifest, T5 specs, VAE specs)."""
    manifest = json.loads((tiny_dir / "manifest.json").read_text(encoding="utf-8"))
    paths = [entry["path"] for entry in manifest["tokenizer"]["files"]]
    specs: Dict[str, List[BlockSpec]] = {"t5": [], "vae": []}
    for block in manifest["blocks"]:
        if block["component"] not in specs:
            continue
        paths += [entry["path"] for entry in block["files"]]
        specs[block["component"]].append(block_spec_of(block))
    for path in paths:
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_dir / path, out_dir / path)
    return manifest, specs["t5"], specs["vae"]


def write_synthetic_model(out_dir: Path, config: STDiT3Config, fusable_gelu: bool = False) -> int:
    """Writes the folder and returns its number of blocks."""
    if not (TINY_MODEL / "manifest.json").is_file():
        raise SystemExit(f"{TINY_MODEL} is missing; build it first with scripts/make_tiny_model.py")
    out_dir.mkdir(parents=True, exist_ok=True)
    tiny, t5_specs, vae_specs = copy_tiny_parts(TINY_MODEL, out_dir)
    blocks = t5_specs + export_stdit(config, out_dir, fusable_gelu) + vae_specs
    architecture = tiny["architecture"]
    manifest = build_manifest(
        out_dir,
        name=f"synthetic-d{config.depth}-h{config.hidden_size}",
        description="Synthetic model for CI-DL tests and benchmarks: the tiny T5 and VAE, a bigger random STDiT.",
        blocks=blocks,
        defaults=DEFAULTS,
        t5=architecture["t5"],
        stdit=config,
        vae=architecture["vae"],
    )
    write_manifest(out_dir, manifest, overwrite=True)
    return len(blocks)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="test")
    parser.add_argument("--depth", type=int, help="STDiT block pairs (overrides the shape's)")
    parser.add_argument("--hidden", type=int, help="STDiT hidden size (overrides the shape's)")
    parser.add_argument(
        "--plain-gelu",
        action="store_true",
        help="export the MLP's tanh-GELU as torch does, which ONNX Runtime leaves as eight element-wise nodes "
        "(default: the form it fuses into FastGelu, as convert_checkpoint.py exports real weights; same maths)",
    )
    args = parser.parse_args(argv)
    shape = dict(SHAPES[args.shape])
    if args.depth is not None:
        shape["depth"] = args.depth
    if args.hidden is not None:
        shape["hidden_size"] = args.hidden
    # The captions come from the tiny T5, so the STDiT keeps the tiny caption width.
    config = dataclasses.replace(get_stdit3_config("tiny"), **shape)
    blocks = write_synthetic_model(args.out, config, fusable_gelu=not args.plain_gelu)
    print(f"wrote {args.out}: {blocks} blocks, STDiT {shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
