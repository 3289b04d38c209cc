"""Jobs forked on an SSH host from its warm fork servers (a sweep's ``prewarm``): the whole compute
conformance suite again with every job forked there, what shows a job was forked from a warm server,
and a connection that drops while such a job runs."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_ssh_conformance
from conformance import Job, RecordingSink

from mltrain.compute.base import ComputeTarget, RunSpec
from mltrain.compute.ssh import SSHCompute
from mltrain.environments.shim import ensure_shim
from mltrain.remote.procs import descendants

WARM_MODULES = ["decimal"]  # imported by the warm servers; no job of the suite imports it itself


class WarmSSHCompute(SSHCompute):
    """An SSH target whose ``prepare`` also prewarms, as a sweep does."""

    def prepare(self, ws: Any, env: Any, log: Any, rebuild: bool = False) -> Any:
        built = super().prepare(ws, env, log, rebuild)
        spec = RunSpec("", "", Path("/"), "", "job.py", [], {}, ensure_shim())
        assert self.prewarm(built, spec, WARM_MODULES, 2)
        return built


class TestSSHComputeWarm(test_ssh_conformance.TestSSHCompute):
    """The conformance suite with every job forked from a warm server on the host."""

    @pytest.fixture
    def make_target(self, ssh_pool) -> Callable[[], ComputeTarget]:
        return lambda: WarmSSHCompute(**ssh_pool.options(ssh_pool.hosts[0]), cancel_grace_s=2.0)

    def test_a_job_is_a_fork_of_a_warm_server_with_a_process_group_and_folder_of_its_own(
        self, start: Callable[..., Job], target: ComputeTarget
    ) -> None:
        script = (
            "import os, sys\n"
            "print('warm' if 'decimal' in sys.modules else 'cold', os.getpgid(0) == os.getpid(), os.getcwd())\n"
            "sys.exit(3)\n"
        )
        jobs = [start(script), start(script)]
        assert [job.wait() for job in jobs] == [3, 3]
        workdir = Path(target.remotes[0].probe["workdir"])  # type: ignore[attr-defined]
        for job in jobs:
            run_dir = workdir / "runs" / job.spec.run_id
            assert f"warm True {run_dir}" in job.sink.text()
            assert json.loads((run_dir / ".mltrain" / "job.json").read_text())["forked"] is True
        assert jobs[0].handle.ref["pgid"] != jobs[1].handle.ref["pgid"]


def _drop_connections(host: Any) -> int:
    """Cut every SSH connection to ``host`` (its sshd's session processes, by PID); the listener stays."""
    killed = 0
    for pid in descendants(host.proc.pid):
        try:
            if os.readlink(f"/proc/{pid}/exe").endswith("sshd"):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        except OSError:
            pass
    return killed


def test_a_forked_job_goes_on_when_the_connection_drops_and_is_followed_again(tmp_path: Path, ssh_pool: Any) -> None:
    from dataclasses import asdict

    from mltrain.config.schema import EnvironmentConfig
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec
    from mltrain.workspace import Workspace, WorkspaceSettings
    from mltrain.workspace.runs import new_run_id

    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    gate = tmp_path / "gate"
    gate.write_text("")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "job.py").write_text(
        "import os, sys, time\nprint('before', flush=True)\n"
        f"while os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\n"
        "print('after', flush=True)\nsys.exit(7)\n"
    )
    snap = ws.snapshots.take(tmp_path / "src")
    node = {**asdict(EnvironmentConfig()), "name": "system", "build": "system"}
    env = resolve(EnvSpec.from_config(node), ws)
    host = ssh_pool.hosts[1]
    target = WarmSSHCompute(**ssh_pool.options(host), keepalive_s=1.0)
    try:
        built = target.prepare(ws, env, lambda line: None)
        run_id = new_run_id()
        run_dir = ws.run_dir(run_id)
        run_dir.mkdir(parents=True)
        spec = RunSpec(run_id, "t", run_dir, snap.id, "job.py", [], {}, ensure_shim())
        target.upload(ws, spec)
        sink = RecordingSink()
        handle = target.start(spec, built, sink)
        deadline = time.monotonic() + 120
        while "before" not in sink.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _drop_connections(host) >= 1
        gate.unlink()  # the job ends only after its connection was cut
        assert handle.wait(120) == 7
        assert "after" in sink.text()
        job = json.loads((host.workdir / "runs" / run_id / ".mltrain" / "job.json").read_text())
        assert job["forked"] is True
        target.collect(spec, handle)
        target.cleanup(spec, handle)
    finally:
        target.close()
