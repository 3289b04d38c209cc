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

from mltrain.environments.variables import as_written
from mltrain.errors import ConfigError
from mltrain.runs.sweep.progress import Progress
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
        self._current: Any = None  # the composed config HydraConfig holds
        self._parser: Any = None
        self._parsed: dict[str, tuple[Any, bool]] = {}  # override line -> (parsed, selects a config group)

    def base(self) -> tuple[dict[str, Any], list[str]]:
        """The sweep's own config and command-line overrides. ``sweep.resume`` is taken as written:
        Hydra's grammar would read a run id such as ``20261201_142333_208e23`` as a number."""
        config, overrides = task_container(self.config), as_written(self.config.hydra.overrides.task)
        for override in overrides:
            key, _, value = override.partition("=")
            if key.lstrip("+") == "sweep.resume" and value and isinstance(config.get("sweep"), dict):
                config["sweep"]["resume"] = value.strip("'\"")
        return config, overrides

    def compose(self, overrides: list[str], number: int) -> tuple[dict[str, Any], list[str]]:
        """The resolved task config of one trial and its task overrides."""
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        try:
            task, template, task_overrides = self._load(list(overrides), number)
            container = task_container(task)
        except (HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(f"cannot compose the trial {' '.join(overrides)}: {exc}") from exc
        self.composed[number] = (task, template, task_overrides)
        return container, task_overrides

    def _load(self, overrides: list[str], number: int) -> tuple[Any, Any, list[str]]:
        """(the trial's task config, the composed config its Hydra part comes from, its task overrides):
        ``load_sweep_config(config, overrides)``, where trials that select the same config groups share
        one composition of their defaults list, onto a copy of whose task part each applies its own
        value overrides, as Hydra's loader does after composing (composition dominates small trials).
        ``HydraConfig`` (read by ``${hydra:...}``) is set in this thread, for this trial."""
        import copy

        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import read_write

        loader = self.hydra_context.config_loader
        repo = getattr(loader, "repository", None)
        apply = getattr(ConfigLoaderImpl, "_apply_overrides_to_config", None)
        if repo is None or apply is None:
            full = loader.load_sweep_config(self.config, overrides)
            _number(full, number)
            HydraConfig.instance().set_config(full)
            self._current = full
            return full, full, as_written(full.hydra.overrides.task)
        if self._parser is None:
            self._parser = OverridesParser.create()
        for line in overrides:  # a sweep repeats its lines: each is parsed and looked up once
            if line not in self._parsed:
                override = self._parser.parse_overrides([line])[0]
                group = override.is_hydra_override() or repo.group_exists(override.key_or_group)
                self._parsed[line] = (override, group)
        parsed = [self._parsed[line][0] for line in overrides]
        groups = [self._parsed[line][0] for line in overrides if self._parsed[line][1]]
        values = [self._parsed[line][0] for line in overrides if not self._parsed[line][1]]
        key = tuple(o.input_line for o in groups)
        entry = self._templates.get(key)
        if entry is None:
            full = loader.load_sweep_config(self.config, [o.input_line for o in groups])
            _number(full, number)
            HydraConfig.instance().set_config(full)
            self._current = full
            task = copy.deepcopy(full)
            with open_dict(task):
                del task["hydra"]
            entry = self._templates[key] = (full, task)
        full, template = entry
        if self._current is not full:
            HydraConfig.instance().set_config(full)
            self._current = full
        current = HydraConfig.instance().cfg
        if current is not None:
            with read_write(current.hydra.job):
                current.hydra.job.num = current.hydra.job.id = number
        task = copy.deepcopy(template)
        apply(values, task)
        return task, full, [o.input_line for o in parsed if not o.is_hydra_override()]


def _number(config: Any, number: int) -> None:
    with open_dict(config):
        config.hydra.job.id = number
        config.hydra.job.num = number


def task_container(config: Any) -> dict[str, Any]:
    """The resolved task part of a composed config (everything but ``hydra``) as plain containers
    (the env vars that read the environment kept as written: :mod:`mltrain.environments.variables`)."""
    from mltrain.environments.variables import plain_config

    return plain_config(config, [k for k in config if k != "hydra"])


def job_returns(trials: HydraTrials, source: ListSource) -> list[Any]:
    """One Hydra JobReturn per requested job (return value: the child's exit code)."""
    import copy

    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    returns = []
    for request in source.requests:
        outcome = source.outcomes.get(id(request))
        ret = JobReturn()
        ret.overrides = list(request.overrides)
        composed = trials.composed.get(outcome.number) if outcome is not None else None
        if composed is not None:
            task, full, task_overrides = composed
            hydra = copy.deepcopy(full.hydra)
            with open_dict(hydra):
                hydra.overrides.task = task_overrides
                hydra.job.num = hydra.job.id = outcome.number
                hydra.job.override_dirname = get_overrides_dirname(
                    overrides=OverridesParser.create().parse_overrides(task_overrides),
                    kv_sep=hydra.job.config.override_dirname.kv_sep,
                    item_sep=hydra.job.config.override_dirname.item_sep,
                    exclude_keys=hydra.job.config.override_dirname.exclude_keys,
                )
            ret.hydra_cfg = OmegaConf.create({"hydra": OmegaConf.to_container(hydra)})
            ret.cfg = task if "hydra" not in task else OmegaConf.masked_copy(task, [k for k in task if k != "hydra"])
            ret.task_name = str(hydra.job.name)
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
        code, _ = run_sweep(base, overrides, trials.compose, chosen, Progress)
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
