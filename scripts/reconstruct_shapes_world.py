#!/usr/bin/env python3
"""Passes ground-truth world videos through the shapes VAE and writes what comes out, to find out what limits the
model: if the VAE's reconstructions of the world's squares are square, a model drawing rectangles has its DiT to
blame; if not, the VAE.

    /usr/bin/python3 scripts/render_shapes_world.py --out GT
    /usr/bin/python3 scripts/reconstruct_shapes_world.py --work build/shapes --gt GT --out RECON [--only-2d]
    npx tsx scripts/score-world-videos.ts RECON

Reads the VAE (decoders, encoders, normalisation) from the training checkpoints in --work; writes the
reconstructions in render_shapes_world.py's format. `--only-2d` leaves the temporal VAE out (frames through the 2-D
encoder and decoder only), which tells the two stages apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from sora.shapes_training import _clips_to_latents, encode_video, load_vae


def to_bytes(video: torch.Tensor) -> bytes:
    """[3, F, H, W] in [-1, 1] -> uint8 F×H×W×3."""
    return ((video.permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy().tobytes()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="train_shapes.py checkpoint folder")
    parser.add_argument("--gt", type=Path, required=True, help="render_shapes_world.py output")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only-2d", action="store_true", help="2-D encoder and decoder only, no temporal VAE")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    vae, spatial, temporal = load_vae(args.work)
    index = json.loads((args.gt / "index.json").read_text())
    shape = (index["frames"], index["height"], index["width"], 3)
    args.out.mkdir(parents=True, exist_ok=True)
    for entry in index["videos"]:
        video = np.frombuffer((args.gt / entry["file"]).read_bytes(), np.uint8).reshape(shape)
        with torch.no_grad():
            if args.only_2d:
                latents = _clips_to_latents(spatial, video[None])  # [1, 4, F, h, w]
                recon = vae.spatial_vae.decode(latents * vae.cfg.spatial.scaling_factor)[0]
            else:
                z = encode_video(vae, spatial, temporal, video)[None]
                recon = vae.decode((z - vae.shift) / vae.scale)[0]
        (args.out / entry["file"]).write_bytes(to_bytes(recon))
    shutil.copyfile(args.gt / "index.json", args.out / "index.json")
    print(f"wrote {len(index['videos'])} reconstructions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
