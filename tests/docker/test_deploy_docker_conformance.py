"""The docker deploy target passes the deploy-target conformance suite against the test session's
dockerd; the serving image is built FROM the session's Python base image."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from deploy_conformance import DeployTargetSuite

from mltrain.deploy.base import DeployTarget
from mltrain.deploy.docker import DockerTarget

pytestmark = pytest.mark.slow

GIB = 1024**3


class TestDockerDeployTarget(DeployTargetSuite):
    @pytest.fixture(scope="class")
    @classmethod
    def make_target(cls, docker_engine: Any, python_image: str) -> Callable[..., DeployTarget]:
        return lambda **options: DockerTarget(base_url=docker_engine.base_url, base_image=python_image, **options)

    def assert_resources(self, record: dict[str, Any]) -> None:
        import docker

        client = docker.APIClient(base_url=record["base_url"])
        try:
            host_config = client.inspect_container(record["container_id"])["HostConfig"]
        finally:
            client.close()
        assert host_config["NanoCpus"] == int(record["cpu"] * 1e9)
        assert host_config["Memory"] == int(record["memory_gb"] * GIB)
