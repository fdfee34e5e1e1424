#!/usr/bin/env python3
"""Builds the shipped tiny model (models/tiny): seeded random weights, tokenizer, every block, manifest.json.

    /usr/bin/python3 scripts/make_tiny_model.py [--out models/tiny] [--overwrite]
        write (or rewrite) the model folder; --overwrite replaces a folder holding a different model, which is
        what the committed folder becomes after a change of the tiny configs
    /usr/bin/python3 scripts/make_tiny_model.py --check [--out models/tiny]
        regenerate into a temporary folder and compare every byte; exit 1 listing the differing files

The output is byte-identical on every run (sora/onnx_export.py explains how), which --check and the tests verify.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from sora.folder_compare import check_regenerates, folder_files
from sora.manifest import MANIFEST_NAME, architecture_dict, build_manifest, check_can_write, write_manifest
from sora.onnx_export import export_units, model_units
from sora.tiny_model import DEFAULTS, DESCRIPTION, MODEL_NAME, build_tiny_modules
from sora.tokenizer_builder import write_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "models" / "tiny"


def write_tiny_model(out_dir: Path, overwrite: bool = False) -> Dict[str, Any]:
    """Writes the whole model folder and returns its manifest; refuses a folder holding another model unless
    overwrite."""
    modules = build_tiny_modules()
    configs = dict(t5=modules.t5.config, stdit=modules.stdit.config, vae=modules.vae.cfg)
    check_can_write(out_dir, MODEL_NAME, architecture_dict(**configs), overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tokenizer(out_dir, modules.t5.config.vocab_size)
    specs = export_units(model_units(modules.t5, modules.stdit, modules.vae), out_dir)
    manifest = build_manifest(
        out_dir, name=MODEL_NAME, description=DESCRIPTION, blocks=specs, defaults=DEFAULTS, **configs
    )
    write_manifest(out_dir, manifest, overwrite=overwrite)
    return manifest


def listed_files(manifest: Dict[str, Any]) -> set:
    entries = manifest["tokenizer"]["files"] + [entry for block in manifest["blocks"] for entry in block["files"]]
    return {entry["path"] for entry in entries} | {MANIFEST_NAME}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder (default: models/tiny)")
    parser.add_argument("--check", action="store_true", help="compare a fresh build with --out instead of writing")
    parser.add_argument("--overwrite", action="store_true", help="replace a folder that holds a different model")
    args = parser.parse_args(argv)
    if args.check:
        return check_regenerates(write_tiny_model, args.out)
    manifest = write_tiny_model(args.out, args.overwrite)
    files = folder_files(args.out)
    stale = sorted(files.keys() - listed_files(manifest))
    if stale:
        print("warning: files not part of the model (delete them):", *stale, sep="\n  ")
    print(f"wrote {args.out}: {len(manifest['blocks'])} blocks, {sum(map(len, files.values()))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
