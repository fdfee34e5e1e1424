"""Converts the tiny model's PyTorch blocks that have golden data (test/fixtures/golden/*.json) to CoreML packages,
one per golden file, traced and shaped with that file's inputs. The Mac self-check (npm run check:mac) runs them
through the CoreML backend on every compute-unit setting and compares with the golden outputs: block-level
parity on a real Mac, with or without a converted model folder. A block coremltools cannot convert is listed with
the converter's first error line; the others are still written.

Needs coremltools 8.3 and torch (the self-check makes a venv with both on a Mac; on Linux, Debian's torch and a
venv with --system-site-packages and coremltools==8.3 convert as well). Targets macOS 13, float32 compute.

    python scripts/coreml_golden_blocks.py --out build/check-mac/golden-blocks [--golden test/fixtures/golden]
      [--blocks t5block-layer1,stdit3_ST_0]

Writes <out>/<golden file stem>.mlpackage and <out>/report.json: {"converted": {stem: package}, "failed": {stem: why}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GOLDEN = REPO_ROOT / "test" / "fixtures" / "golden"


def wrappers() -> Dict[str, object]:
    """Contract name → the block's PyTorch wrapper, from the same units the ONNX export traces."""
    from sora.onnx_export import model_units
    from sora.tiny_model import build_tiny_modules

    modules = build_tiny_modules()
    units = model_units(modules.t5, modules.stdit, modules.vae)
    return {block.name: block for unit in units for block in unit.blocks}


def convert(block, inputs: Dict[str, "object"], out: Path) -> None:
    import coremltools as ct
    import numpy as np
    import torch

    example = tuple(torch.from_numpy(np.array(inputs[name])) for name in block.input_names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(block.wrapper.eval(), example)
    tensor_types = [
        # int64 inputs become int32 in CoreML (it has no int64); the backend feeds the declared type.
        ct.TensorType(name=name, shape=tuple(value.shape), dtype=np.int32 if value.dtype == torch.int64 else np.float32)
        for name, value in zip(block.input_names, example)
    ]
    model = ct.convert(
        traced,
        inputs=tensor_types,
        outputs=[ct.TensorType(name=name) for name in block.output_names],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.macOS13,
        compute_precision=ct.precision.FLOAT32,
    )
    model.save(str(out))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN)
    parser.add_argument("--blocks", help="comma-separated golden file stems (default: every golden block file)")
    args = parser.parse_args(argv)

    from sora.golden_io import read_golden

    stems = sorted(path.stem for path in args.golden.glob("*.json") if not path.stem.startswith("sampler"))
    if args.blocks:
        stems = [stem for stem in stems if stem in args.blocks.split(",")]
    by_name = wrappers()
    args.out.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Dict[str, str]] = {"converted": {}, "failed": {}}
    for stem in stems:
        golden = read_golden(args.golden / f"{stem}.json")
        package = args.out / f"{stem}.mlpackage"
        try:
            convert(by_name[golden.block], golden.inputs, package)
            report["converted"][stem] = package.name
        except Exception as error:  # noqa: BLE001 - any converter failure is reported per block, the rest go on
            lines = [line for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
            report["failed"][stem] = f"{type(error).__name__}: {lines[0][:300]}"
        print(f"{stem}: {'converted' if stem in report['converted'] else report['failed'][stem]}", flush=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if report["converted"] else 1


if __name__ == "__main__":
    sys.exit(main())
