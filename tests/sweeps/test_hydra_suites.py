"""mltrain's launcher passes Hydra's own launcher conformance suites (plain Hydra task functions)."""

from __future__ import annotations

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from hydra_plugins.mltrain_launcher.mltrain_launcher import MltrainLauncher
from hydra_plugins.mltrain_optuna_sweeper.mltrain_sweeper import MltrainSweeper


@pytest.fixture(autouse=True)
def _hydra_as_in_a_fresh_process(hydra_restore_singletons: None) -> None:
    """Hydra's suites expect its defaults for an app without version_base (1.1: jobs change into their
    output folder); an mltrain app run in this process earlier set 1.3, which Hydra keeps process-wide."""
    from hydra.version import VersionBase
    from packaging.version import Version

    VersionBase.instance().setbase(Version("1.1"))


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
