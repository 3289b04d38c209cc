"""Sweep tests: a small job script whose metric curves, failures and pauses are set by its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

# --x: the metric "score" is x (or x * k for k = 1..steps with --steps);
# --fail_at X: exit with status 3 after logging when x == X; --hold FILE: after logging, wait while FILE exists
# (until stopped); --hold_below Q: hold only when x < Q.
CURVE = """
import argparse, os, sys, time
from mltrain import Run

p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=0.0)
p.add_argument("--steps", type=int, default=1)
p.add_argument("--fail_at", type=float, default=-1.0)
p.add_argument("--hold", default="")
p.add_argument("--hold_below", type=float, default=1e9)
a = p.parse_args()
run = Run.get_context()
for k in range(1, a.steps + 1):
    run.log("score", a.x * k, step=k)
run.flush()
print(f"x={a.x}", flush=True)
if a.hold and a.x < a.hold_below:
    while os.path.exists(a.hold):
        time.sleep(0.05)
os.makedirs("outputs", exist_ok=True)
with open("outputs/x.txt", "w") as f:
    f.write(str(a.x))
sys.exit(3 if a.x == a.fail_at else 0)
"""

JOB = """
name: sweeps
source_dir: src
script: curve.py
arguments:
  x: 0
"""


@pytest.fixture
def curve_job(project: Path) -> list[str]:
    """Overrides selecting the curve script (``project/conf/job/curve.yaml``, ``project/src``), ranked by
    its score, two children at a time."""
    (project / "src").mkdir()
    (project / "src" / "curve.py").write_text(CURVE)
    (project / "conf" / "job").mkdir(parents=True)
    (project / "conf" / "job" / "curve.yaml").write_text(JOB)
    return ["environment=system", "job=curve", "sweep.primary_metric.name=score", "sweep.max_concurrent_runs=2"]
