"""Local compute passes the compute-target conformance suite (the interpreter running the tests)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conformance import ComputeTargetSuite

from mltrain.compute.base import ComputeTarget, JobRef, RunSpec
from mltrain.compute.local import LocalCompute
from mltrain.remote.procs import group_exists


class TestLocalCompute(ComputeTargetSuite):
    @pytest.fixture
    def make_target(self) -> Callable[[], ComputeTarget]:
        return lambda: LocalCompute(cancel_grace_s=2.0)

    @pytest.fixture
    def environment_config(self) -> dict:
        return {"name": "system", "build": "system"}

    def assert_cleaned(self, target: ComputeTarget, spec: RunSpec, ref: JobRef) -> None:
        assert not group_exists(int(ref["pgid"]))
