"""Reaching a Ray cluster address that does not answer (no cluster needed: a closed loopback port):
bounded by ``compute.connect_timeout_s`` with an error naming the address and the fix, and Ctrl-C
is not held up while connecting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from support import write_script

pytest.importorskip("ray")

NOWHERE = "127.0.0.9:26999"  # nothing listens there


def run_on(address: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mltrain",
        "+compute=cluster",
        f"compute.address={address}",
        "environment=system",
        "~register",
        "job.source_dir=src",
        "job.script=job.py",
        *extra,
    ]


@pytest.mark.parametrize("address", [NOWHERE, f"ray://{NOWHERE}"])
def test_unreachable_address_fails_at_connect_timeout_with_the_fix(project, cli_json, address):
    write_script(project / "src", "job.py", "print('never runs')\n")
    proc = subprocess.run(
        run_on(address, "compute.connect_timeout_s=3"), cwd=project, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert f"cannot reach the Ray cluster at {address} within compute.connect_timeout_s=3 s" in proc.stderr
    assert "dashboard URL" in proc.stderr and "Traceback" not in proc.stderr
    assert "never runs" not in proc.stdout
    assert cli_json("runs", "list") == []


def test_ctrl_c_while_connecting_ends_the_command(project):
    write_script(project / "src", "job.py", "print('never runs')\n")
    proc = subprocess.Popen(
        run_on(NOWHERE, "compute.connect_timeout_s=600"),
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # Ctrl-C once Ray's client process is trying the address: the whole process group gets SIGINT
        deadline_reached = True
        for _ in range(600):
            out = subprocess.run(
                ["pgrep", "-g", str(proc.pid), "-f", "get_address_for_submission_client"],
                capture_output=True,
                text=True,
            )
            if out.stdout.strip():
                deadline_reached = False
                break
            subprocess.run(["sleep", "0.1"])
        assert not deadline_reached, "mltrain never tried the address"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted" in err
