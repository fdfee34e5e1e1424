#!/usr/bin/env bash
# Makes .venv-coreml: a venv over Debian's python3 and torch (--system-site-packages) with coremltools 8.3 from PyPI,
# which converts PyTorch blocks to CoreML packages on Linux (prediction needs macOS). The converter and the CoreML
# Python tests run with .venv-coreml/bin/python; scripts/run-python-tests.sh picks it up when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-coreml
if ! "$venv/bin/python" -c 'import coremltools' >/dev/null 2>&1; then
  /usr/bin/python3 -m venv --clear --system-site-packages "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check coremltools==8.3
fi
"$venv/bin/python" -c 'import coremltools, torch; print(f"{coremltools.__version__=} {torch.__version__=}")' 2>/dev/null
