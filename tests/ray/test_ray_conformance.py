"""Ray cluster compute passes the compute-target conformance suite against the session's cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conformance import ComputeTargetSuite, Job
from raycluster import ON_THE_WORKER_NODE
from support import wait_dead

from mltrain.compute.base import ComputeTarget, JobRef, RunSpec
from mltrain.compute.ray import ClusterCompute


class TestClusterCompute(ComputeTargetSuite):
    one_node_options = ON_THE_WORKER_NODE  # two nodes: two runs may land on different ones

    @pytest.fixture
    def make_target(self, ray_cluster) -> Callable[..., ComputeTarget]:
        return lambda **options: ClusterCompute(
            address=ray_cluster.dashboard_url, token_file=str(ray_cluster.token_file), cancel_grace_s=2.0, **options
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

    @pytest.mark.parametrize("delay", [0.0, 0.5, 1.0, 2.0])
    def test_a_cancel_at_any_moment_of_the_start_stops_the_script(
        self, start: Callable[..., Job], tmp_path: Path, delay: float
    ) -> None:
        """Ray's stop_job signals the processes it sees at that moment: a cancel while the job is being
        set up, or its script started, still stops the script and leaves no process behind."""
        pid_file = tmp_path / f"pid-{delay}"
        job = start(
            f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "time.sleep(6)\nprint('DONE', flush=True)\n"
        )
        time.sleep(delay)
        job.handle.cancel("canceled by the test")
        job.wait(120)
        assert "DONE" not in job.sink.text()
        if pid_file.exists():  # the script had started (the nodes share this machine's process table)
            assert wait_dead(int(pid_file.read_text()), 30), "the script outlived its canceled job"
