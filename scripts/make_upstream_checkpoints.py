#!/usr/bin/env python3
"""Writes checkpoints in the upstream formats, laid out as the Hugging Face repositories (sora/upstream_checkpoints.py).

    /usr/bin/python3 scripts/make_upstream_checkpoints.py --out DIR --tiny
        the three repositories with the weights of models/tiny (what the CLI's pull and convert tests serve)
    /usr/bin/python3 scripts/make_upstream_checkpoints.py --out DIR --random t5=t5-v1_1-xxl [--random stdit=tiny …]
        seeded random weights of named configs, one tensor in memory at a time (T5-XXL: 19 GB on disk)

Folders: DIR/OpenSora-STDiT-v3, DIR/t5-v1_1-xxl, DIR/OpenSora-VAE-v1.2. Prints one line per folder written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from sora.upstream_checkpoints import REPOSITORIES, write_random_repository, write_tiny_repositories


def _component_config(text: str) -> tuple:
    component, _, config = text.partition("=")
    if component not in REPOSITORIES or not config:
        raise argparse.ArgumentTypeError(f"{text!r}: expected COMPONENT=CONFIG with COMPONENT one of {', '.join(REPOSITORIES)}")
    return component, config


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--tiny", action="store_true", help="the three repositories with the tiny model's weights")
    kind.add_argument("--random", type=_component_config, action="append", metavar="COMPONENT=CONFIG")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.tiny:
            folders = list(vars(write_tiny_repositories(args.out)).values())
        else:
            folders = [
                write_random_repository(component, config, args.out / REPOSITORIES[component], args.seed)
                for component, config in args.random
            ]
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for folder in folders:
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
