"""SSH compute passes the compute-target conformance suite against a real sshd on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conformance import ComputeTargetSuite

from mltrain.compute.base import ComputeTarget, JobRef, RunSpec
from mltrain.compute.ssh import SSHCompute
from mltrain.remote.procs import group_exists


class TestSSHCompute(ComputeTargetSuite):
    @pytest.fixture
    def make_target(self, ssh_pool) -> Callable[[], ComputeTarget]:
        return lambda: SSHCompute(**ssh_pool.options(ssh_pool.hosts[0]), cancel_grace_s=2.0)

    @pytest.fixture
    def environment_config(self) -> dict:
        return {"name": "bare", "build": "venv", "pip": []}

    def assert_cleaned(self, target: ComputeTarget, spec: RunSpec, ref: JobRef) -> None:
        # the "host" is this machine: its run folder and the job's process group are gone
        assert isinstance(target, SSHCompute)
        workdir = target.remotes[0].probe["workdir"]
        assert not (Path(workdir) / "runs" / spec.run_id).exists()
        assert not group_exists(int(ref["pgid"]))
