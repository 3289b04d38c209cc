"""Jobs forked by a pre-warmed fork server (a sweep's children on local compute) pass the same
compute-target conformance suite as jobs started with Popen."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conformance import ComputeTargetSuite

from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec
from mltrain.compute.local import ForkedHandle, LocalCompute
from mltrain.environments.base import Materialised
from mltrain.procs import group_exists


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
