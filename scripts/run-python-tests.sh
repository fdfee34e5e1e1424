#!/usr/bin/env bash
# The Python model tests need Debian's torch and friends (python3-torch, python3-onnx, python3-numpy,
# python3-jsonschema, python3-pytest; .ci/run installs them). Without any of them they are skipped, and this says
# which is missing instead of passing in silence or failing halfway.
set -euo pipefail
cd "$(dirname "$0")/.."

python=/usr/bin/python3
if [ ! -x "$python" ]; then
  echo "Python tests skipped: $python not found (install python3-torch and friends, see .ci/run)"
  exit 0
fi
if ! missing=$("$python" scripts/sora/dependencies.py --tests); then
  echo "Python tests skipped: $missing"
  exit 0
fi
exec "$python" -m pytest scripts/tests -q
