#!/usr/bin/env python3
"""Writes a copy of a model folder with its weights stored as float16 or int8 (sora.weight_compression).

    /usr/bin/python3 scripts/compress_model.py --model DIR --weights float16|int8 --out DIR

`--out` must not exist. Prints one `[i/n] <block names>` line per written unit; a failure ends with one
`error: …` line on stderr and a non-zero status. `ondevice-sora models compress` runs this into a hidden folder
and renames it into place once the manifest loads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from sora.dependencies import MODEL_TOOLING, require_modules

# onnx, numpy and jsonschema; no torch (the graphs are rewritten, not exported again).
REQUIREMENTS = tuple(requirement for requirement in MODEL_TOOLING if requirement.module != "torch")

if __name__ == "__main__":
    require_modules("scripts/compress_model.py", REQUIREMENTS)  # before the imports below, which need them

from sora.weight_compression import SETTINGS, compress_folder  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder with manifest.json (float32 weights)")
    parser.add_argument("--weights", choices=SETTINGS, required=True, help="how the copy stores its weights")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (must not exist)")
    args = parser.parse_args(argv)
    if not (args.model / "manifest.json").is_file():
        print(f"error: {args.model}: no manifest.json (not a model folder)", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"error: {args.out} already exists", file=sys.stderr)
        return 2

    def progress(index: int, total: int, names: List[str]) -> None:
        print(f"[{index}/{total}] {' '.join(names)}", flush=True)

    try:
        manifest = compress_folder(args.model, args.out, args.weights, progress)
    except (ValueError, OSError) as error:  # CompressionError, ManifestError, unreadable graphs
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {len(manifest['blocks'])} blocks, weights {args.weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
