"""The fork server's own contract beyond the conformance suite (tests/sweeps/test_forked_conformance.py):
it forks each child ahead of its job, replaces a spare that died, hears the exit code from the child
(also when a process the job forked still holds the child's socket) and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mltrain.remote.forkserver import ForkServer
from mltrain.remote.procs import descendants, group_exists


@pytest.fixture
def server() -> Iterator[ForkServer]:
    s = ForkServer(sys.executable, dict(os.environ), ["json"])
    assert s.wait_ready()
    yield s
    s.close()


def run(server: ForkServer, folder: Path, script: str, timeout: float = 30) -> tuple[int, int | None]:
    (folder / "job.py").write_text(script)
    out = os.open(folder / "out.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(folder / "err.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        pid = server.send({"script": "job.py", "argv": [], "cwd": str(folder), "env": dict(os.environ)}, out, err)
    finally:
        os.close(out)
        os.close(err)
    assert pid is not None
    return pid, server.wait_exit(timeout)


def spare(server: ForkServer, gone: tuple[int, ...] = (), timeout: float = 10) -> int:
    """The one child the idle server holds ready (not one of ``gone``, ended jobs the server may not
    have reaped yet): it leads a process group of its own."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [k for k in descendants(server.proc.pid) if k not in gone]
        if len(kids) == 1 and os.getpgid(kids[0]) == kids[0]:
            return kids[0]
        time.sleep(0.02)
    raise AssertionError(f"no single spare child: {descendants(server.proc.pid)}")


def test_each_job_runs_in_the_child_forked_ahead_for_it(server: ForkServer, tmp_path: Path) -> None:
    waiting = spare(server)
    pid, code = run(server, tmp_path, "import os\nprint(os.getpid(), os.getpgid(0))\n")
    assert code == 0 and pid == waiting
    assert (tmp_path / "out.txt").read_text().split() == [str(pid), str(pid)]
    assert spare(server, gone=(pid,)) != pid  # the next one, forked once this job ended


def test_a_spare_killed_from_outside_is_replaced(server: ForkServer, tmp_path: Path) -> None:
    waiting = spare(server)
    os.kill(waiting, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while group_exists(waiting) and time.monotonic() < deadline:  # dead (a zombie the server has not reaped)
        time.sleep(0.02)
    pid, code = run(server, tmp_path, "print('ran')\n")
    assert code == 0 and (tmp_path / "out.txt").read_text() == "ran\n"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("import sys\nsys.exit(3)\n", 3),
        ("import os\nos._exit(7)\n", 7),  # no word from the child: waitpid tells
        ("raise ValueError('boom')\n", 1),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", -signal.SIGKILL),
        # a process the job forked keeps the child's socket open: the code still comes at once
        ("import os, time\nif os.fork() == 0:\n    time.sleep(20)\n    os._exit(0)\nraise SystemExit(4)\n", 4),
        ("import os, time\nif os.fork() == 0:\n    time.sleep(20)\n    os._exit(0)\nos.kill(os.getpid(), 9)\n", -9),
    ],
)
def test_exit_codes_as_python_reports_them(server: ForkServer, tmp_path: Path, script: str, expected: int) -> None:
    pid, code = run(server, tmp_path, script, timeout=10)  # not held until the grandchild's sleep ends
    assert code == expected
    if group_exists(pid):
        os.killpg(pid, signal.SIGKILL)  # the grandchild of the last two cases


def test_the_spare_ends_with_the_server(tmp_path: Path) -> None:
    s = ForkServer(sys.executable, dict(os.environ), ["json"])
    assert s.wait_ready()
    waiting = spare(s)
    s.close()
    deadline = time.monotonic() + 10
    while group_exists(waiting) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_exists(waiting)
