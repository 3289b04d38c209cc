"""The local deploy target passes the deploy-target conformance suite (servers as process groups here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from deploy_conformance import DeployTargetSuite
from deploytools import children

from mltrain.deploy.base import CONFIG_FILE, DeployTarget
from mltrain.deploy.local import LocalTarget


class TestLocalDeployTarget(DeployTargetSuite):
    @pytest.fixture(scope="class")
    @classmethod
    def make_target(cls) -> Callable[..., DeployTarget]:
        return lambda **options: LocalTarget(**options)

    def assert_resources(self, record: dict[str, Any]) -> None:
        assert len(children(record["pid"])) == record["workers"]  # worker processes under the supervisor
        config = json.loads((Path(record["folder"]) / CONFIG_FILE).read_text())
        assert config["memory_gb"] == record["memory_gb"]  # the limit of the server's memory watchdog
