"""Fixtures of the environment tests: a private environment cache for tests about build mechanics
(so each of them really builds), and a probe job."""

from __future__ import annotations

from pathlib import Path

import pytest
from envtools import PROBE, write_conf


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty environment cache for this test (in-process and for the processes it starts)."""
    cache = tmp_path / "env-cache"
    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def probe_job(project: Path) -> str:
    """``job=probe``: src/probe.py printing ``probe: NAME==VERSION`` for each module in job.args."""
    (project / "src").mkdir()
    (project / "src" / "probe.py").write_text(PROBE)
    write_conf(project, "job", "probe", {"job": {"name": "envtest", "source_dir": "src", "script": "probe.py"}})
    (project / "conf" / "job" / "probe.yaml").write_text(
        "# @package _global_\n" + (project / "conf" / "job" / "probe.yaml").read_text()
    )
    return "job=probe"
