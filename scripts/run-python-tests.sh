#!/usr/bin/env bash
# The Python model tests need Debian's torch and friends (python3-torch, python3-onnx, python3-numpy,
# python3-jsonschema, python3-pytest; .ci/run installs them). Without any of them they are skipped, and this says
# which is missing instead of passing in silence or failing halfway. They run with the coremltools venv's python
# (.venv-coreml, made by scripts/coreml-venv.sh; $ONDEVICE_SORA_COREML_PYTHON names another) when it exists, so the
# CoreML conversion tests run too; otherwise those skip and say why.
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
coreml_python=${ONDEVICE_SORA_COREML_PYTHON:-.venv-coreml/bin/python}
if [ -x "$coreml_python" ] && "$coreml_python" -c 'import torch' >/dev/null 2>&1; then
  python=$coreml_python
else
  echo "CoreML conversion tests will skip: no $coreml_python (make it with scripts/coreml-venv.sh)"
fi
exec "$python" -m pytest scripts/tests -q -rs
