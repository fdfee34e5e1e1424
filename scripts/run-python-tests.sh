#!/usr/bin/env bash
# The Python model tests need Debian's torch (python3-torch, installed by .ci/run). Without it they are skipped,
# and this says so plainly instead of passing in silence.
set -euo pipefail
cd "$(dirname "$0")/.."

python=/usr/bin/python3
if [ ! -x "$python" ]; then
  echo "Python tests skipped: $python not found (install python3-torch and friends, see .ci/run)"
  exit 0
fi
if ! "$python" -c 'import torch' >/dev/null 2>&1; then
  echo "Python tests skipped: $python cannot import torch (install python3-torch, see .ci/run)"
  exit 0
fi
exec "$python" -m pytest scripts/tests -q
