#!/usr/bin/env python3
"""Passes ground-truth world videos through the shapes VAE and writes what comes out, to find out what limits the
model: if the VAE's reconstructions of the world's squares are square, a model drawing rectangles has its DiT to
blame; if not, the VAE.

    /usr/bin/python3 scripts/render_shapes_world.py --out GT
    /usr/bin/python3 scripts/reconstruct_shapes_world.py --work build/shapes --gt GT --out RECON [--only-2d]
    npx tsx scripts/score-world-videos.ts RECON

Reads the VAE (decoders, encoders, normalisation) from the training checkpoints in --work; writes the
reconstructions in render_shapes_world.py's format. `--only-2d` leaves the temporal VAE out (frames through the 2-D
encoder and decoder only), which tells the two stages apart; `--invert-steps N` then optimises each frame's latent
for N steps to match the frame through the 2-D decoder (from the encoder's latent): the best the decoder can draw,
which tells the decoder from the encoder. `--every K` keeps every K-th frame and `--files` some videos, since
inverting costs a decoder pass per step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from sora.shapes_training import clips_to_latents, encode_video, load_spatial, load_vae, to_unit


def to_bytes(video: torch.Tensor) -> bytes:
    """[3, F, H, W] in [-1, 1] -> uint8 F×H×W×3."""
    return ((video.permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy().tobytes()


def invert(decoder: torch.nn.Module, latents: torch.Tensor, video: np.ndarray, steps: int) -> torch.Tensor:
    """The latents whose decoded frames come closest to `video` (L1 + MSE, Adam), from `latents`."""
    target = to_unit(video)
    latents = latents.clone().requires_grad_(True)
    opt = torch.optim.Adam([latents], lr=0.02)
    decoder.requires_grad_(False)
    for _ in range(steps):
        recon = decoder.decode(latents)
        loss = (recon - target).abs().mean() + (recon - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return latents.detach()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="train_shapes.py checkpoint folder")
    parser.add_argument("--gt", type=Path, required=True, help="render_shapes_world.py output")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only-2d", action="store_true", help="2-D encoder and decoder only, no temporal VAE")
    parser.add_argument("--invert-steps", type=int, default=0, help="with --only-2d: optimise the latents this long")
    parser.add_argument("--every", type=int, default=1, help="keep every K-th frame")
    parser.add_argument("--files", default=None, help="comma-separated video files of the index (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.only_2d:
        spatial, decoder = load_spatial(args.work)
    else:
        vae, spatial, temporal = load_vae(args.work)
    if args.invert_steps and not args.only_2d:
        parser.error("--invert-steps needs --only-2d")
    if args.every != 1 and not args.only_2d:
        parser.error("--every needs --only-2d (the temporal VAE works on whole 17-frame chunks)")
    index = json.loads((args.gt / "index.json").read_text())
    shape = (index["frames"], index["height"], index["width"], 3)
    wanted = None if args.files is None else set(args.files.split(","))
    videos = [entry for entry in index["videos"] if wanted is None or entry["file"] in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    for entry in videos:
        video = np.frombuffer((args.gt / entry["file"]).read_bytes(), np.uint8).reshape(shape)[:: args.every]
        with torch.no_grad():
            if args.only_2d:
                latents = clips_to_latents(spatial, video[None])[0].transpose(0, 1)  # [F, 4, h, w]
                if args.invert_steps:
                    with torch.enable_grad():
                        latents = invert(decoder, latents, video, args.invert_steps)
                recon = decoder.decode(latents).transpose(0, 1)
            else:
                z = encode_video(vae, spatial, temporal, video)[None]
                recon = vae.decode((z - vae.shift) / vae.scale)[0]
        (args.out / entry["file"]).write_bytes(to_bytes(recon))
    frames = len(range(0, index["frames"], args.every))
    (args.out / "index.json").write_text(json.dumps({**index, "frames": frames, "videos": videos}, indent=2))
    print(f"wrote {len(videos)} reconstructions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
