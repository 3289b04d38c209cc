#!/usr/bin/env bash
# Install everything the tests need (system packages, .venv with mltrain[dev]) and run them on parallel
# pytest-xdist workers: tests/xdist_groups.py keeps the tests of the one Ray cluster, and those sharing a
# module-scoped fixture, on one worker. pytest lists the 25 slowest tests at the end.
# Usage: scripts/test.sh [--quick] [pytest args]
#   --quick                 the inner loop: no test that starts a server, builds an environment or runs
#                           mltrain as a process (tests/suite_marks.py NOT_QUICK)
#   MLTRAIN_TEST_WORKERS=N  the number of workers (default 3); 0 runs the tests in one process
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/install.sh dev
exec .venv/bin/python -m pytest -n "${MLTRAIN_TEST_WORKERS:-3}" --dist loadgroup "$@"
