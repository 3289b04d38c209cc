"""Jobs forked by a pre-warmed fork server (a sweep's children on local compute) pass the same
compute-target conformance suite as jobs started with Popen."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from conformance import ComputeTargetSuite

from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec
from mltrain.compute.local import LocalCompute
from mltrain.compute.local.handles import ForkedHandle
from mltrain.environments.base import Materialised
from mltrain.remote.procs import group_exists


class PrewarmedLocal(LocalCompute):
    """Local compute whose jobs are forked from warm servers (prewarmed at the first start)."""

    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        if not self._pools:
            self.prewarm(env, spec, ["json", "signal"], 2)
        return super().start(spec, env, sink)


class TestForkedLocalCompute(ComputeTargetSuite):
    @pytest.fixture
    def make_target(self) -> Callable[[], ComputeTarget]:
        return lambda: PrewarmedLocal(cancel_grace_s=2.0)

    @pytest.fixture
    def environment_config(self) -> dict:
        return {"name": "system", "build": "system"}

    def assert_cleaned(self, target: ComputeTarget, spec: RunSpec, ref: JobRef) -> None:
        assert not group_exists(int(ref["pgid"]))

    def test_jobs_are_forked_by_the_warm_server(self, start: Callable[..., object]) -> None:
        job = start("import os\nprint(os.getpid())\n")
        assert isinstance(job.handle, ForkedHandle)  # type: ignore[attr-defined]
        assert job.handle.wait(60) == 0  # type: ignore[attr-defined]

    def test_the_job_leads_its_process_group_when_start_returns(self, start: Callable[..., object]) -> None:
        """A cancel sent the moment start returns signals the job's group: that group must exist by then,
        also on a busy machine (busy loops make the server's and the child's order visible)."""
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
        try:
            self._start_and_check_groups(start)
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()

    def _start_and_check_groups(self, start: Callable[..., object]) -> None:
        for _ in range(30):
            job = start("import time\ntime.sleep(30)\n")
            pid = job.handle.pid  # type: ignore[attr-defined]
            grouped = os.getpgid(pid) == pid
            job.handle.cancel("done", force=True)  # type: ignore[attr-defined]
            job.handle.wait(60)  # type: ignore[attr-defined]
            assert grouped
