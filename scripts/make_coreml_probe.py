"""Writes test/fixtures/coreml/range-probe.mlmodel: the model spec of a tiny CoreML ML Program, y = 2x + 1, whose
input x has shape [1, 16, 2..8, 1..4] with the fixed axes 1 and 16 inside the range constraint, as the published
On-device Sora packages declare their attention masks. The Mac self-check and the darwin-only tests wrap it into an
.mlpackage (test/helpers/coreml-probe.ts) to see how CoreML reports such ranges (sizeRangeForDimension) and whether
the bridge predicts, writes into output backings and reads spec versions as assumed.

Needs coremltools (8.3) and torch; coremltools converts on Linux too. The spec targets macOS 13 (specification
version 7), so every Mac the bridge supports can load it.

    python3 -m venv --system-site-packages .venv && .venv/bin/pip install coremltools==8.3
    .venv/bin/python scripts/make_coreml_probe.py [--out test/fixtures/coreml/range-probe.mlmodel]
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "test" / "fixtures" / "coreml" / "range-probe.mlmodel"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import coremltools as ct
    import numpy as np
    import torch

    class AffineProbe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2.0 + 1.0

    traced = torch.jit.trace(AffineProbe().eval(), torch.zeros(1, 16, 4, 3))
    shape = ct.Shape(shape=(1, 16, ct.RangeDim(2, 8, default=4), ct.RangeDim(1, 4, default=3)))
    model = ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=shape, dtype=np.float32)],
        outputs=[ct.TensorType(name="y")],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.macOS13,
        compute_precision=ct.precision.FLOAT32,
    )
    # The spec alone: the package around it (Manifest.json, an empty weights folder) is written by the tests.
    spec = model.get_spec()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(spec.SerializeToString())
    print(f"wrote {args.out} (specification version {spec.specificationVersion})")


if __name__ == "__main__":
    main()
