#!/usr/bin/env bash
# Install everything the tests need (system packages, .venv with mltrain[dev]) and run them.
# Usage: scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/install.sh dev
exec .venv/bin/python -m pytest "$@"
