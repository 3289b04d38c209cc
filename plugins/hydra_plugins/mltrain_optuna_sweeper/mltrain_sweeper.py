"""``hydra/sweeper=mltrain`` (mltrain's default for ``-m``): the thin plugin class; the core
(``mltrain.runs.sweep.search``, Optuna) is imported only when a sweep starts. (No
``from __future__ import annotations``: Hydra loads plugin modules without registering them, which
dataclasses then cannot resolve.)"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class MltrainSweeperConf:
    """The sweeper has no options of its own: the sampler, search space, primary metric, limits,
    seed and early termination are the task config's ``sweep`` keys (conf/sweep/*.yaml), recorded
    with the sweep run."""

    _target_: str = "hydra_plugins.mltrain_optuna_sweeper.mltrain_sweeper.MltrainSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="mltrain", node=MltrainSweeperConf, provider="mltrain")


class MltrainSweeper(Sweeper):
    """Asks for trials while the launcher has free slots and tells each outcome as it ends (mltrain's
    app and launcher); otherwise launches every grid combination as one batch."""

    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from hydra_plugins.mltrain_launcher.mltrain_launcher import MltrainLauncher

        from mltrain.runs.sweep import search
        from mltrain.runs.sweep.entry import sweep_app

        assert self.config is not None and self.launcher is not None
        # mltrain's app with mltrain's launcher: one sweep, trials asked for while slots are free
        app = sweep_app(self.task_function) if isinstance(self.launcher, MltrainLauncher) else None
        return search.sweep(self.hydra_context, self.config, self.launcher, app, arguments)
