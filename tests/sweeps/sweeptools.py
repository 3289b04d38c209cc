"""Helpers of the sweep tests: the curve script, the workspace's sweeps and children, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mltrain.workspace import Workspace, WorkspaceSettings

# --x: the metric "score" is x (or x * k for k = 1..steps with --steps);
# --fail_at X: exit with status 3 after logging when x == X; --hold FILE: after logging, wait while FILE exists
# (until stopped); --hold_at X: hold only when x == X; --hold_after N: hold only from the
# (N+1)-th trial on that reaches this point (counted in FILE).
CURVE = """
import argparse, os, sys, time
from mltrain import Run

p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=0.0)
p.add_argument("--steps", type=int, default=1)
p.add_argument("--fail_at", type=float, default=-1.0)
p.add_argument("--hold", default="")
p.add_argument("--hold_at", type=float, default=None)
p.add_argument("--hold_after", type=int, default=0)
a = p.parse_args()
run = Run.get_context()
for k in range(1, a.steps + 1):
    run.log("score", a.x * k, step=k)
run.flush()
print(f"x={a.x}", flush=True)
if a.hold and a.hold_at in (None, a.x) and os.path.exists(a.hold):
    with open(a.hold, "a+") as f:
        f.seek(0)
        before = len(f.read().splitlines())
        f.write("arrived\\n")
    while before >= a.hold_after and os.path.exists(a.hold):
        time.sleep(0.05)
os.makedirs("outputs", exist_ok=True)
with open("outputs/x.txt", "w") as f:
    f.write(str(a.x))
sys.exit(3 if a.x == a.fail_at else 0)
"""

TUNE = """
sampler: random
search_space:
  job.arguments.x: uniform(0, 1)
max_total_runs: 3
seed: 7
"""  # conf/sweep/tune.yaml of the tests: three seeded random trials of x

JOB = """
name: sweeps
source_dir: src
script: curve.py
arguments:
  x: 0
"""


def workspace(project: Path) -> Workspace:
    return Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))


def sweeps(ws: Workspace) -> list[dict[str, Any]]:
    """Sweep parents, oldest first."""
    return sorted((r for r in ws.runs.list(limit=None) if r["parent_run_id"] is None), key=lambda r: r["created_at"])


def children(ws: Workspace, parent_id: str) -> list[dict[str, Any]]:
    return sorted(ws.runs.list(parent_run_id=parent_id, limit=None), key=lambda r: r["created_at"])


def the_sweep(ws: Workspace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    parents = sweeps(ws)
    assert len(parents) == 1, parents
    return parents[0], children(ws, parents[0]["id"])


def x_of(run: dict[str, Any]) -> float:
    args = run["arguments"]
    return float(args[args.index("--x") + 1])


def wait_for(check: Callable[[], Any], timeout: float = 300.0) -> Any:
    """Poll ``check`` until it returns something true (a wait, not an assertion on time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting after {timeout} s")
