"""Docker compute passes the compute-target conformance suite against the test session's dockerd."""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest
from conformance import ComputeTargetSuite

from mltrain.compute.base import ComputeTarget, JobRef, RunSpec
from mltrain.compute.docker import DockerCompute


class TestDockerCompute(ComputeTargetSuite):
    mount_is_read_only = True  # a read-only bind mount, even for a script running as root

    @pytest.fixture
    def make_target(self, docker_engine) -> Callable[[], ComputeTarget]:
        return lambda: DockerCompute(base_url=docker_engine.base_url, cancel_grace_s=2.0)

    @pytest.fixture
    def environment_config(self, python_image: str) -> dict:
        return {"name": "bare", "build": "venv", "pip": [], "docker": {"base_image": python_image, "network": "host"}}

    def assert_cleaned(self, target: ComputeTarget, spec: RunSpec, ref: JobRef) -> None:
        client = docker.APIClient(base_url=ref["engine"])
        try:
            with pytest.raises(docker.errors.NotFound):
                client.inspect_container(ref["container"])
        finally:
            client.close()
