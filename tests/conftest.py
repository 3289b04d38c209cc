"""Shared fixtures: every test gets its own workspace and working folder; environment builds are
cached across tests (and test runs) in ``~/.cache/mltrain-test``; mltrain runs as a real process.

How tests are marked by the servers they use and what ``--quick`` keeps: tests/suite_marks.py; how the
tests share xdist workers: tests/xdist_groups.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

TEST_CACHE = Path(os.environ.get("MLTRAIN_TEST_CACHE", Path.home() / ".cache" / "mltrain-test"))

# the session's Docker engine and base images (docker_engine, docker_client, python_image, busybox_image);
# the marks and --quick; the groups of tests that share an xdist worker
pytest_plugins = ["docker_engine", "suite_marks", "xdist_groups"]


def default_signals() -> None:
    """SIGINT and SIGHUP as a terminal's shell gives them: a suite started in the background (``cmd &`` in a
    script ignores SIGINT) or under nohup (SIGHUP) would pass the ignored signals on to every process the tests
    start, and tests of Ctrl-C, of stops and of a closing terminal would fail or hang."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def pytest_configure(config: pytest.Config) -> None:
    default_signals()
    os.environ["MLTRAIN_CACHE_DIR"] = str(TEST_CACHE / "envs")
    os.environ.pop("MLTRAIN_WORKSPACE", None)
    os.environ.pop("MLTRAIN_DB_URL", None)
    os.environ.pop("MLTRAIN_ARTIFACT_ROOT", None)
    os.environ.pop("MLTRAIN_PROJECT_CONF", None)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder (the cwd) whose workspace is ``./.mltrain``."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


class Proc(subprocess.CompletedProcess):  # type: ignore[type-arg]
    @property
    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None, timeout: float) -> Proc:
    full_env = {**os.environ, **(env or {})}
    cp = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    return Proc(cp.args, cp.returncode, cp.stdout, cp.stderr)


@pytest.fixture
def mltrain(project: Path) -> Callable[..., Proc]:
    """``mltrain(*overrides, cwd=, env=, timeout=)``: run ``python -m mltrain`` in ``project``."""

    def call(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600) -> Proc:
        return _run([sys.executable, "-m", "mltrain", *args], cwd or project, env, timeout)

    return call


@pytest.fixture
def cli(project: Path) -> Callable[..., Proc]:
    """``cli(*args, cwd=, env=)``: run the ``mltrain`` management command in ``project``."""

    def call(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120) -> Proc:
        return _run([sys.executable, "-m", "mltrain.cli.main", *args], cwd or project, env, timeout)

    return call


@pytest.fixture
def cli_json(cli: Callable[..., Proc]) -> Callable[..., object]:
    """``cli_json(*args)``: the parsed ``--json`` output of a management command (which must succeed)."""

    def call(*args: str, **kw: object) -> object:
        proc = cli(*args, "--json", **kw)
        assert proc.returncode == 0, proc.output
        return json.loads(proc.stdout)

    return call
