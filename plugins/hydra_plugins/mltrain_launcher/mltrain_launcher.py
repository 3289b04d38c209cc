"""``hydra/launcher=mltrain`` (mltrain's default for ``-m``): the thin plugin class; the core
(``mltrain.runs.sweep.launcher``) is imported only when jobs are launched. (No ``from __future__ import annotations``:
Hydra loads plugin modules without registering them, which dataclasses then cannot resolve.)"""

from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class MltrainLauncherConf:
    """The launcher has no options of its own: a sweep's settings are the task config's ``sweep``
    keys (recorded with the sweep run), e.g. ``sweep.max_concurrent_runs=4``."""

    _target_: str = "hydra_plugins.mltrain_launcher.mltrain_launcher.MltrainLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="mltrain", node=MltrainLauncherConf, provider="mltrain")


class MltrainLauncher(Launcher):
    """An app with a sweep entry point (mltrain's): every job a child run of one sweep, run
    concurrently; any other app: its jobs one after another in this process, as Hydra's basic
    launcher runs them."""

    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from mltrain.runs.sweep import launcher as core
        from mltrain.runs.sweep.entry import sweep_app

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        app = sweep_app(self.task_function)
        if app is not None:
            return core.launch(app, self.hydra_context, self.config, job_overrides)
        return core.launch_basic(self.hydra_context, self.config, self.task_function, job_overrides, initial_job_idx)
