"""Canonical JSON serialisation shared by every generated JSON file.

Generated files (tokenizer, manifest, golden data) must be byte-identical on every run so that regeneration can
be checked by comparing bytes; that needs one fixed key order, indent and float formatting in one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def canonical_json_bytes(obj: Any) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON and other parsers (JSON.parse) reject them.
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_canonical_json(path: str | Path, obj: Any) -> Path:
    path = Path(path)
    path.write_bytes(canonical_json_bytes(obj))
    return path
