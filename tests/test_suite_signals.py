"""The suite's own set-up: a session started with SIGINT and SIGHUP ignored (``scripts/test.sh &`` in a script,
nohup) still gives the processes its tests start the default signals, so tests of Ctrl-C, of stops and of a
closing terminal see what a user's terminal would give."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # runs pytest as a process: not in --quick
NAME = "test_a_session_started_with_ignored_signals_gives_its_tests_the_defaults"
INNER = "MLTRAIN_TEST_SIGNALS_INNER"  # set: this test runs inside the session started with ignored signals
ROOT = Path(__file__).resolve().parent.parent
IGNORING = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGHUP, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *sys.argv[1:]])"
)


def died_of(sig: signal.Signals) -> int:
    """How a shell that sends itself ``sig`` ends (minus the signal's number: killed by it)."""
    proc = subprocess.run(["sh", "-c", f"kill -{sig.name[3:]} $$; exec sleep 30"], timeout=60)
    return proc.returncode


def test_a_session_started_with_ignored_signals_gives_its_tests_the_defaults() -> None:
    if os.environ.get(INNER):
        assert died_of(signal.SIGINT) == -signal.SIGINT
        assert died_of(signal.SIGHUP) == -signal.SIGHUP
        return
    node = f"{Path(__file__).relative_to(ROOT)}::{NAME}"
    proc = subprocess.run(
        [sys.executable, "-c", IGNORING, node],
        cwd=ROOT,
        env={**os.environ, INNER: "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
