"""mltrain's launcher passes Hydra's own launcher conformance suites (plain Hydra task functions)."""

from __future__ import annotations

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from hydra_plugins.mltrain_launcher.mltrain_launcher import MltrainLauncher
from hydra_plugins.mltrain_optuna_sweeper.mltrain_sweeper import MltrainSweeper


def test_discovery() -> None:
    assert MltrainLauncher.__name__ in [p.__name__ for p in Plugins.instance().discover(Launcher)]
    assert MltrainSweeper.__name__ in [p.__name__ for p in Plugins.instance().discover(Sweeper)]


@pytest.mark.parametrize("launcher_name, overrides", [("mltrain", [])])
class TestMltrainLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({"defaults": [{"override hydra/launcher": "mltrain"}]}, ["-m"])],
)
class TestMltrainLauncherIntegration(IntegrationTestSuite):
    pass
