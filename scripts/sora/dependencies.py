"""The third-party modules the model tooling imports, checked before any work.

A script that finds a module missing only where it first imports it may have run for minutes (and written files)
by then: `make_synthetic_model.py` without jsonschema exported every block and failed at the manifest. So the
scripts call `require_modules()` first, which names every missing module with the Debian package and the pip name
that provide it, and exits with the CLI's "dependency" status (8). Standard library only, so it runs anywhere.

    /usr/bin/python3 scripts/sora/dependencies.py [--tests]   # exit 0, or 8 with one line saying what to install
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import List, Sequence

# The CLI's exit status for a missing program or library (src/errors.ts, DEPENDENCY).
DEPENDENCY_EXIT = 8


@dataclass(frozen=True)
class Requirement:
    module: str
    debian: str
    pip: str


MODEL_TOOLING = (
    Requirement("torch", "python3-torch", "torch"),
    Requirement("onnx", "python3-onnx", "onnx"),
    Requirement("numpy", "python3-numpy", "numpy"),
    Requirement("jsonschema", "python3-jsonschema", "jsonschema"),
)
TESTS = MODEL_TOOLING + (Requirement("pytest", "python3-pytest", "pytest"),)


def missing(requirements: Sequence[Requirement] = MODEL_TOOLING) -> List[Requirement]:
    """The requirements that do not import (an installed but broken module counts as missing)."""
    absent = []
    for requirement in requirements:
        try:
            importlib.import_module(requirement.module)
        except ImportError:
            absent.append(requirement)
    return absent


def describe(absent: Sequence[Requirement]) -> str:
    modules = ", ".join(requirement.module for requirement in absent)
    debian = " ".join(requirement.debian for requirement in absent)
    pip = " ".join(requirement.pip for requirement in absent)
    return f"{sys.executable} cannot import {modules} (Debian/Ubuntu: apt-get install {debian}; or pip install {pip})"


def require_modules(script: str, requirements: Sequence[Requirement] = MODEL_TOOLING) -> None:
    """Exits with DEPENDENCY_EXIT and one line on stderr when any requirement is missing."""
    absent = missing(requirements)
    if absent:
        print(f"error: {script} needs Python modules: {describe(absent)}", file=sys.stderr)
        raise SystemExit(DEPENDENCY_EXIT)


if __name__ == "__main__":
    wanted = TESTS if "--tests" in sys.argv[1:] else MODEL_TOOLING
    absent_now = missing(wanted)
    if absent_now:
        print(describe(absent_now))
        sys.exit(DEPENDENCY_EXIT)
