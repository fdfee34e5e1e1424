#!/usr/bin/env python3
"""Renders ground-truth videos of the shapes world for its held-out prompts: what a perfect model would draw.

    /usr/bin/python3 scripts/render_shapes_world.py --out DIR [--seeds 1,2] [--prompts 64] [--pairs]

Writes one raw RGB24 file per held-out prompt and seed (`p03-seed1.rgb`: frames × height × width × 3 bytes, the
world's own renderer and trajectory sampler) and `index.json` listing them with their prompt and attributes. The
evaluator's tests score these (every criterion must pass) and distorted copies of them (stretched, frozen, with a
dropped frame), and the training notes compare the VAE's reconstructions of them with the model's videos.
`--pairs` renders the held-out scenes of the two-object world instead (`pNN-seedS.rgb` likewise; each index entry
lists its two `objects`). Needs numpy only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from sora.jsonio import write_canonical_json
from sora.shapes_world import NUM_FRAMES, SIZE, Attributes, Pair, heldout_combinations, heldout_pairs, sample_video


def seed_list(text: str) -> List[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") from None
    if any(seed < 0 for seed in seeds):
        raise argparse.ArgumentTypeError("seeds must not be negative")
    return seeds


def describe(scene) -> dict:
    if isinstance(scene, Pair):
        objects = [dict(shape=a.shape, colour=a.colour, motion=a.motion) for a in scene.objects]
        return dict(background=scene.first.background, objects=objects)
    attrs: Attributes = scene
    return dict(shape=attrs.shape, colour=attrs.colour, background=attrs.background, motion=attrs.motion)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the .rgb files and index.json")
    parser.add_argument("--seeds", type=seed_list, default=[1], help="trajectory seeds, comma-separated")
    parser.add_argument("--prompts", type=int, default=None, help="only the first N held-out prompts")
    parser.add_argument("--pairs", action="store_true", help="the held-out two-object scenes instead")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    heldout = (heldout_pairs() if args.pairs else heldout_combinations())[: args.prompts]
    entries = []
    for index, scene in enumerate(heldout):
        for seed in args.seeds:
            name = f"p{index:02d}-seed{seed}.rgb"
            (args.out / name).write_bytes(sample_video(scene, seed).tobytes())
            entries.append(dict(file=name, index=index, seed=seed, prompt=scene.caption(), **describe(scene)))
    write_canonical_json(
        args.out / "index.json", dict(width=SIZE, height=SIZE, frames=NUM_FRAMES, videos=entries)
    )
    print(f"wrote {len(entries)} videos to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
