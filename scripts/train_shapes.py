#!/usr/bin/env python3
"""Trains the shapes model (on a CUDA GPU when there is one, else the CPU) and exports it to models/shapes.

    /usr/bin/python3 scripts/train_shapes.py [--work build/shapes] [--stage all|vae-spatial,vae-temporal,latents,dit,export]
                                             [--minutes-dit 100] [--dit-steps 4000] [--out models/shapes] [--overwrite]
                                             [--device cpu|cuda] [--vae-batch 32] [--dit-batch 16] [--tdtm-share 0.5]
                                             [--timed]

Stages run in order and resume from their checkpoints in --work: interrupt at any time (Ctrl-C or a time budget
running out) and run the same command again to continue. A finished stage is skipped. `export` writes the model
folder from the latest checkpoints (the DiT's exponential moving average of weights), so it can be run mid-training
to look at an intermediate model. CPU time with the defaults: about 2 h on 2 cores. On a GPU the same stages run with
larger batches and far more steps per minute; `--timed` turns the minutes into the length of each stage. The README
says how models/shapes itself was trained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import torch

from sora.shapes_training import (
    TrainingVideos,
    encode_training_set,
    log,
    train_dit,
    train_vae_spatial,
    train_vae_temporal,
)
from sora.shapes_export import TOKENIZER_VOCAB, export_shapes_model
from sora.shapes_world import caption_words
from sora.tokenizer_builder import write_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = ("vae-spatial", "vae-temporal", "latents", "dit", "export")


def write_training_tokenizer(work: Path) -> Path:
    """The model's tokenizer, also used to tokenise training captions (sora.unigram reads it like the runtime)."""
    write_tokenizer(work / "tokenizer", TOKENIZER_VOCAB, caption_words())
    return work / "tokenizer" / "tokenizer.json"


def stage_list(text: str) -> tuple:
    if text == "all":
        return STAGES
    names = text.split(",")
    unknown = [name for name in names if name not in STAGES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown stage {unknown[0]!r}: use all or some of {','.join(STAGES)}")
    return tuple(stage for stage in STAGES if stage in names)  # always in pipeline order


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "build" / "shapes", help="checkpoint folder")
    parser.add_argument(
        "--stage", type=stage_list, default=STAGES, help=f"all, or some of {','.join(STAGES)} (comma-separated)"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "shapes")
    parser.add_argument("--overwrite", action="store_true", help="replace a model folder holding another model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--vae-batch", type=int, default=32, help="frames per 2-D VAE step (clips: half that)")
    parser.add_argument("--dit-batch", type=int, default=16)
    parser.add_argument("--dit-lr", type=float, default=6e-4)
    parser.add_argument(
        "--tdtm-share", type=float, default=0.5, help="share of DiT steps run with TDTM frame merging (0 to 1)"
    )
    parser.add_argument(
        "--timed", action="store_true",
        help="a stage whose minutes run out counts as finished (step counts become upper bounds): time-boxed runs",
    )
    parser.add_argument("--spatial-steps", type=int, default=1000)
    parser.add_argument("--temporal-steps", type=int, default=480)
    parser.add_argument("--variants", type=int, default=2, help="videos encoded per training combination")
    parser.add_argument(
        "--pairs", type=int, default=0,
        help="two-object training videos (the two-object world) besides the one-object ones; the model exported "
        "then declares two objects and its world.json holds held-out two-object prompts",
    )
    parser.add_argument("--dit-steps", type=int, default=4000)
    # 480 temporal steps took 10.3 min here: a budget that ran out first would leave the next stage nothing to start from.
    parser.add_argument("--minutes-vae", type=float, default=20.0, help="wall-clock budget per VAE stage")
    parser.add_argument("--minutes-latents", type=float, default=20.0, help="wall-clock budget of the latents stage")
    parser.add_argument("--minutes-dit", type=float, default=100.0, help="wall-clock budget of this dit run")
    parser.add_argument(
        "--init-from", type=Path, default=None,
        help="fine-tune a model folder (e.g. models/shapes): its VAE decoders stay as they are (the VAE stages train "
        "encoders for them), its latent normalisation is kept, and the DiT starts from its T5 and STDiT weights",
    )
    parser.add_argument(
        "--scaling-weight", type=float, default=1.0,
        help="draw growing and shrinking videos this many times as often as others in DiT training",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    tokenizer = write_training_tokenizer(args.work)
    wanted = args.stage
    videos = TrainingVideos(args.variants, pairs=args.pairs)
    log(f"device {args.device}")
    for stage in wanted:
        log(f"stage {stage}")
        if stage == "vae-spatial":
            train_vae_spatial(
                args.work, args.spatial_steps, args.minutes_vae * 60, args.vae_batch, videos=videos, device=args.device,
                timed=args.timed, init_from=args.init_from,
            )
        elif stage == "vae-temporal":
            train_vae_temporal(
                args.work, args.temporal_steps, args.minutes_vae * 60, args.vae_batch // 2, videos=videos,
                device=args.device, timed=args.timed, init_from=args.init_from,
            )
        elif stage == "latents":
            encode_training_set(
                args.work, args.variants, args.minutes_latents * 60, videos=videos, device=args.device,
                init_from=args.init_from,
            )
        elif stage == "dit":
            train_dit(
                args.work, tokenizer, args.dit_steps, args.minutes_dit * 60, args.dit_batch, lr=args.dit_lr,
                device=args.device, timed=args.timed, tdtm_share=args.tdtm_share, init_from=args.init_from,
                scaling_weight=args.scaling_weight,
            )
        else:
            export_shapes_model(args.work, args.out, args.overwrite, two_objects=args.pairs > 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
