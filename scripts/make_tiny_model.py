#!/usr/bin/env python3
"""Builds the shipped tiny model (models/tiny): seeded random weights, tokenizer, every block, manifest.json.

    /usr/bin/python3 scripts/make_tiny_model.py [--out models/tiny] [--overwrite]
        write (or rewrite) the model folder; --overwrite replaces a folder holding a different model, which is
        what the committed folder becomes after a change of the tiny configs
    /usr/bin/python3 scripts/make_tiny_model.py --check [--out models/tiny]
        regenerate into a temporary folder and compare every byte; exit 1 listing the differing files
    .venv-coreml/bin/python scripts/make_tiny_model.py --format coreml [--check] [--out models/tiny-coreml]
        the same weights as CoreML packages (needs coremltools 8.3, see sora/coreml_export.py)

The output is byte-identical on every run (sora/onnx_export.py and sora/coreml_export.py explain how), which --check
and the tests verify.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from sora.coreml_export import CoreMLSettings, LatentBounds, export_coreml_units
from sora.folder_compare import check_regenerates, folder_files
from sora.manifest import MANIFEST_NAME, architecture_dict, build_manifest, check_can_write, write_manifest
from sora.onnx_export import export_units, model_units
from sora.tiny_model import DEFAULTS, DESCRIPTION, MODEL_NAME, build_tiny_modules
from sora.tokenizer_builder import write_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = {"onnx": REPO_ROOT / "models" / "tiny", "coreml": REPO_ROOT / "models" / "tiny-coreml"}
COREML_NAME = f"{MODEL_NAME}-coreml"
COREML_DESCRIPTION = (
    "models/tiny converted to CoreML packages (same seeded random weights; per-block precision and compute "
    "units), for the CoreML backend's tests on macOS. Regenerate with "
    "`.venv-coreml/bin/python scripts/make_tiny_model.py --format coreml`."
)


def write_tiny_model(out_dir: Path, overwrite: bool = False, fmt: str = "onnx") -> Dict[str, Any]:
    """Writes the whole model folder and returns its manifest; refuses a folder holding another model unless
    overwrite."""
    modules = build_tiny_modules()
    configs = dict(t5=modules.t5.config, stdit=modules.stdit.config, vae=modules.vae.cfg)
    name, description = (MODEL_NAME, DESCRIPTION) if fmt == "onnx" else (COREML_NAME, COREML_DESCRIPTION)
    check_can_write(out_dir, name, architecture_dict(**configs), overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tokenizer(out_dir, modules.t5.config.vocab_size)
    units = model_units(modules.t5, modules.stdit, modules.vae, one_graph_per_pair=fmt == "onnx")
    if fmt == "onnx":
        specs = export_units(units, out_dir)
    else:
        settings = CoreMLSettings(LatentBounds.from_defaults(DEFAULTS), modules.stdit.config.num_heads)
        specs = export_coreml_units(units, out_dir, settings)
    manifest = build_manifest(out_dir, name=name, description=description, blocks=specs, defaults=DEFAULTS, **configs)
    write_manifest(out_dir, manifest, overwrite=overwrite)
    return manifest


def listed_files(manifest: Dict[str, Any]) -> set:
    entries = manifest["tokenizer"]["files"] + [entry for block in manifest["blocks"] for entry in block["files"]]
    return {entry["path"] for entry in entries} | {MANIFEST_NAME}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="onnx", choices=sorted(DEFAULT_OUT), help="block format (default onnx)")
    parser.add_argument("--out", type=Path, help="model folder (default: models/tiny, models/tiny-coreml for coreml)")
    parser.add_argument("--check", action="store_true", help="compare a fresh build with --out instead of writing")
    parser.add_argument("--overwrite", action="store_true", help="replace a folder that holds a different model")
    args = parser.parse_args(argv)
    out: Path = args.out or DEFAULT_OUT[args.format]
    write: Callable[..., Dict[str, Any]] = lambda folder, overwrite=False: write_tiny_model(folder, overwrite, args.format)
    if args.check:
        return check_regenerates(write, out)
    manifest = write(out, args.overwrite)
    files = folder_files(out)
    listed = listed_files(manifest)
    # A CoreML block's entry is its package folder, which lists every file inside it.
    stale = sorted(name for name in files if name not in listed and not any(name.startswith(f"{p}/") for p in listed))
    if stale:
        print("warning: files not part of the model (delete them):", *stale, sep="\n  ")
    print(f"wrote {out}: {len(manifest['blocks'])} blocks, {sum(map(len, files.values()))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
