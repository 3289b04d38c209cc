#!/usr/bin/env bash
# Create .venv (if needed) and install mltrain into it, editable, with the given extras.
# Usage: scripts/install.sh [EXTRAS]      e.g. scripts/install.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check uv
fi
spec="."
[ -n "${1:-}" ] && spec=".[$1]"
.venv/bin/uv pip install -q --python .venv/bin/python -e "$spec"
