"""Sweep tests: a small job script whose metric curves, failures and pauses are set by its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweeptools import CURVE, JOB


@pytest.fixture
def curve_job(project: Path) -> list[str]:
    """Overrides selecting the curve script (``project/conf/job/curve.yaml``, ``project/src``), ranked by
    its score, two children at a time."""
    (project / "src").mkdir()
    (project / "src" / "curve.py").write_text(CURVE)
    (project / "conf" / "job").mkdir(parents=True)
    (project / "conf" / "job" / "curve.yaml").write_text(JOB)
    return ["environment=system", "job=curve", "sweep.primary_metric.name=score", "sweep.max_concurrent_runs=2"]
