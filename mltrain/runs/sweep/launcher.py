"""Core of mltrain's Hydra launcher (the plugin class in plugins/hydra_plugins/mltrain_launcher/).

For mltrain's own app (a task function bound to an object with ``sweep_trials``) the jobs of a
sweep become children of one sweep run (:mod:`mltrain.runs.sweep.session`), each composed by Hydra
for its override set in the launcher's thread and run concurrently from shared run plans; the sweep's
exit code is reported to the app. Any other Hydra app's task function runs as Hydra's basic
launcher runs it: in this process, one job after another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import open_dict

from mltrain.errors import ConfigError
from mltrain.runs.sweep.session import TrialOutcome, TrialRequest, TrialSource, run_sweep


def is_mltrain_task(task_function: Any) -> bool:
    return bool(getattr(getattr(task_function, "__self__", None), "sweep_trials", False))


class ListSource:
    """The fixed override sets of a Hydra sweeper's batch, in order."""

    def __init__(self, job_overrides: Sequence[Sequence[str]]) -> None:
        jobs = [list(o) for o in job_overrides]
        common = set.intersection(*(set(o) for o in jobs)) if len(jobs) > 1 else set()
        self.requests = [TrialRequest(overrides=o, label=[x for x in o if x not in common]) for o in jobs]
        self._next = 0
        self.outcomes: dict[int, TrialOutcome] = {}

    def next_request(self) -> TrialRequest | None:
        if self._next >= len(self.requests):
            return None
        self._next += 1
        return self.requests[self._next - 1]

    def done(self, outcome: TrialOutcome) -> None:
        self.outcomes[id(outcome.request)] = outcome


class HydraTrials:
    """Composes trial configs with Hydra (``load_sweep_config``) in the launcher's thread."""

    def __init__(self, hydra_context: Any, config: Any) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.composed: dict[int, Any] = {}
        self._templates: dict[tuple[str, ...], Any] = {}

    def base(self) -> tuple[dict[str, Any], list[str]]:
        """The sweep's own config and command-line overrides. ``sweep.resume`` is taken as written:
        Hydra's grammar would read a run id such as ``20261201_142333_208e23`` as a number."""
        config, overrides = task_container(self.config), [str(o) for o in self.config.hydra.overrides.task]
        for override in overrides:
            key, _, value = override.partition("=")
            if key.lstrip("+") == "sweep.resume" and value and isinstance(config.get("sweep"), dict):
                config["sweep"]["resume"] = value.strip("'\"")
        return config, overrides

    def compose(self, overrides: list[str], number: int) -> tuple[dict[str, Any], list[str]]:
        """The resolved task config of one trial and its task overrides."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        try:
            sweep_config = self._load(list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = number
                sweep_config.hydra.job.num = number
            HydraConfig.instance().set_config(sweep_config)  # this thread only composes; workers never read it
            container = task_container(sweep_config)
        except (HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(f"cannot compose the trial {' '.join(overrides)}: {exc}") from exc
        self.composed[number] = sweep_config
        return container, [str(o) for o in sweep_config.hydra.overrides.task]

    def _load(self, overrides: list[str]) -> Any:
        """``load_sweep_config(config, overrides)``. Trials that select the same config groups share
        one composition of their defaults list, onto a copy of which each applies its own value
        overrides, as Hydra's loader does after composing (composition dominates small trials)."""
        import copy

        from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        loader = self.hydra_context.config_loader
        repo = getattr(loader, "repository", None)
        apply = getattr(ConfigLoaderImpl, "_apply_overrides_to_config", None)
        if repo is None or apply is None:
            return loader.load_sweep_config(self.config, overrides)
        parsed = OverridesParser.create().parse_overrides(overrides)
        groups = [o for o in parsed if o.is_hydra_override() or repo.group_exists(o.key_or_group)]
        values = [o for o in parsed if o not in groups]
        key = tuple(o.input_line for o in groups)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = loader.load_sweep_config(self.config, [o.input_line for o in groups])
        cfg = copy.deepcopy(template)
        apply(values, cfg)
        job = cfg.hydra.job
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.task = [o.input_line for o in parsed if not o.is_hydra_override()]
            job.override_dirname = get_overrides_dirname(
                overrides=[o for o in parsed if not o.is_hydra_override()],
                kv_sep=job.config.override_dirname.kv_sep,
                item_sep=job.config.override_dirname.item_sep,
                exclude_keys=job.config.override_dirname.exclude_keys,
            )
        OmegaConf.copy_cache(from_config=self.config, to_config=cfg)
        return cfg


def task_container(config: Any) -> dict[str, Any]:
    """The resolved task part of a composed config (everything but ``hydra``) as plain containers."""
    from omegaconf import Container, OmegaConf

    out: dict[str, Any] = {}
    for key in config:
        if key != "hydra":
            value = config[key]
            out[str(key)] = OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value
    return out


def job_returns(trials: HydraTrials, source: ListSource) -> list[Any]:
    """One Hydra JobReturn per requested job (return value: the child's exit code)."""
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf, open_dict

    returns = []
    for request in source.requests:
        outcome = source.outcomes.get(id(request))
        ret = JobReturn()
        ret.overrides = list(request.overrides)
        composed = trials.composed.get(outcome.number) if outcome is not None else None
        if composed is not None:
            ret.hydra_cfg = OmegaConf.create({"hydra": OmegaConf.to_container(composed.hydra)})
            task = OmegaConf.create(OmegaConf.to_container(composed))
            with open_dict(task):
                del task["hydra"]
            ret.cfg = task
            ret.task_name = str(composed.hydra.job.name)
        ret.working_dir = str(outcome.result.run_dir) if outcome is not None and outcome.result else ""
        ret.status = JobStatus.COMPLETED
        ret.return_value = outcome.exit_code if outcome is not None else 130
        returns.append(ret)
    return returns


def launch_mltrain(
    hydra_context: Any, config: Any, task_function: Any, job_overrides: Sequence[Sequence[str]], source: Any = None
) -> list[Any]:
    """Run the jobs (or the trials of ``source``, a sweeper's) as one mltrain sweep; report its code."""
    from hydra.core.hydra_config import HydraConfig

    trials = HydraTrials(hydra_context, config)
    original = HydraConfig.instance().cfg
    try:
        base, overrides = trials.base()
        listed = ListSource(job_overrides) if source is None else None
        chosen: TrialSource = listed if listed is not None else source
        code, _ = run_sweep(base, overrides, trials.compose, chosen)
    finally:
        HydraConfig.instance().cfg = original
    task_function.__self__.report(code)
    return job_returns(trials, listed) if listed is not None else []


def launch_basic(hydra_context: Any, config: Any, task_function: Any, job_overrides: Any, initial_job_idx: int) -> Any:
    """A plain Hydra app's jobs, as Hydra's basic launcher runs them."""
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    launcher = BasicLauncher()
    launcher.setup(hydra_context=hydra_context, task_function=task_function, config=config)
    return launcher.launch(job_overrides, initial_job_idx)
