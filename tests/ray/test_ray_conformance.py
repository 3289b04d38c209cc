"""Ray cluster compute passes the compute-target conformance suite against the session's cluster."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conformance import ComputeTargetSuite

from mltrain.compute.base import ComputeTarget, JobRef, RunSpec
from mltrain.compute.cluster import ClusterCompute


class TestClusterCompute(ComputeTargetSuite):
    @pytest.fixture
    def make_target(self, ray_cluster) -> Callable[[], ComputeTarget]:
        return lambda: ClusterCompute(
            address=ray_cluster.dashboard_url, token_file=str(ray_cluster.token_file), cancel_grace_s=2.0
        )

    @pytest.fixture
    def environment_config(self) -> dict:
        return {"name": "cluster-python", "build": "system"}

    def assert_cleaned(self, target: ComputeTarget, spec: RunSpec, ref: JobRef) -> None:
        from ray.job_submission import JobSubmissionClient

        assert isinstance(target, ClusterCompute)
        client: JobSubmissionClient = target.client
        with pytest.raises(RuntimeError, match="does not exist"):
            client.get_job_info(f"{ref['job']}-1")
