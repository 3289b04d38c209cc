"""The wrapper a Ray job runs on its node (mltrain/remote/ray_job.py) is plain Python: how it turns
Ray's stop into a stop of the script is checked here without a cluster, at every moment of the start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mltrain.remote.ray_job import EXIT, GRACE_ENV, MARK_ENV, entrypoint

MARK = "\x1emltrain:test:"
SCRIPT = """\
import os, signal, sys, time
def note(sig, _frame):
    with open(os.environ['TERMS'], 'a') as f:
        f.write(signal.Signals(sig).name[3])
signal.signal(signal.SIGTERM, note)
signal.signal(signal.SIGINT, note)  # never called: Ray's SIGINT is the wrapper's
print('STARTED sigint blocked:', signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []), flush=True)
time.sleep(float(sys.argv[1]))
print('DONE', flush=True)
"""


def _start(folder: Path, terms: Path, sleep_s: float) -> subprocess.Popen[bytes]:
    (folder / "job.py").write_text(SCRIPT)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `python` is this one
    env = {**os.environ, MARK_ENV: MARK, GRACE_ENV: "1", "TERMS": str(terms), "PATH": path}
    return subprocess.Popen(  # as Ray's job supervisor starts a job's entrypoint
        entrypoint("job.py", [str(sleep_s)]),
        shell=True,
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.parametrize("whom", ["wrapper", "group"])
@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0])
def test_a_stop_at_any_moment_of_the_start_reaches_the_script_once(tmp_path: Path, delay: float, whom: str) -> None:
    """Ray signals the processes it sees when asked to stop: only the entrypoint's process when the
    script is not started yet (or just being started), the whole group later. Either way the script never runs to
    its end, gets SIGTERM at most once, and the wrapper still reports an exit code."""
    terms = tmp_path / "terms"
    proc = _start(tmp_path, terms, 3.0)
    time.sleep(delay)
    if whom == "wrapper":
        os.kill(proc.pid, signal.SIGINT)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert "DONE" not in text
    if "STARTED" in text:
        assert "STARTED sigint blocked: True" in text
    if terms.exists():
        assert terms.read_text() == "T"
    exits = [line for line in text.splitlines() if line.startswith(MARK + EXIT)]
    if exits:  # a wrapper stopped while Python itself was starting ends without one
        assert int(exits[0][len(MARK) + 1 :]) in (-signal.SIGTERM, -signal.SIGKILL)


@pytest.mark.parametrize("whom", ["wrapper", "group"])
def test_a_stop_after_the_start_gives_the_script_one_sigterm_and_its_grace_period(tmp_path: Path, whom: str) -> None:
    terms = tmp_path / "terms"
    proc = _start(tmp_path, terms, 0.5)
    assert proc.stdout is not None
    lines = iter(proc.stdout.readline, b"")
    first = next(line for line in lines if not line.startswith(MARK.encode())).decode()
    assert first == "STARTED sigint blocked: True\n"
    if whom == "wrapper":
        os.kill(proc.pid, signal.SIGINT)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    # the handler returns, so the script sleeps on and ends inside the 1 s grace period
    assert terms.read_text() == "T"
    assert "DONE" in out.decode()
    assert f"{MARK}{EXIT}0" in out.decode()
