"""Core of mltrain's Hydra sweeper (plugins/hydra_plugins/mltrain_optuna_sweeper/): which trials a
sweep runs.

The search space is ``sweep.search_space`` plus the command line (``key=a,b``, ``range()``,
``interval()``); fixed command-line overrides go to every trial. ``sweep.sampler``: ``grid`` (every
combination of choices, in Hydra's order), ``random`` and ``bayesian`` (Optuna's RandomSampler and
TPESampler, seeded by ``sweep.seed``, up to ``sweep.max_total_runs``). Trials are asked for while
slots are free and told their outcome as each child ends — the primary metric the child logged (read
from the workspace), Pruned for a child stopped by early termination, Fail otherwise; their live
curves are reported as intermediate values. A resumed sweep replays the sampler: a trial that
completed before is kept (told again, not run again).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mltrain.errors import ConfigError
from mltrain.runs.sweep.entry import SweepApp
from mltrain.runs.sweep.launcher import run
from mltrain.runs.sweep.settings import SweepConfig, as_settings, check
from mltrain.runs.sweep.space import Domain, command_line_space, grid, overrides_of, parse_space
from mltrain.runs.sweep.trials import TrialOutcome, TrialRequest, TrialSource
from mltrain.workspace.runs import COMPLETED

SAMPLERS = ("grid", "random", "bayesian")


class GridSource:
    """Every combination of the choice domains."""

    def __init__(self, domains: dict[str, Domain], fixed: list[str]) -> None:
        self._combos: Iterator[dict[str, Any]] = grid(domains)
        self.fixed = fixed

    def next_request(self) -> TrialRequest | None:
        params = next(self._combos, None)
        if params is None:
            return None
        label = overrides_of(params)
        return TrialRequest(overrides=[*self.fixed, *label], label=label, params=params)

    def done(self, outcome: TrialOutcome) -> None:
        pass


def _distribution(key: str, domain: Domain) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    a = domain.args
    if domain.kind == "choice":
        return CategoricalDistribution(list(a))
    if domain.kind == "uniform":
        return FloatDistribution(float(a[0]), float(a[1]))
    if domain.kind == "loguniform":
        return FloatDistribution(float(a[0]), float(a[1]), log=True)
    if domain.kind == "quniform":
        return FloatDistribution(float(a[0]), float(a[1]), step=float(a[2]))
    if domain.kind == "randint":
        return IntDistribution(int(a[0]), int(a[1]) - 1)
    raise ConfigError(f"sweep.search_space.{key}: unknown kind {domain.kind}")


class OptunaSource:
    """Random or Bayesian (TPE) sampling with an in-memory Optuna study."""

    def __init__(
        self, domains: dict[str, Domain], fixed: list[str], sampler: str, seed: int | None, maximize: bool
    ) -> None:
        try:
            import optuna
        except ImportError as exc:
            raise ConfigError(
                f"sweep.sampler={sampler} needs Optuna, which is not installed",
                hint="pip install 'mltrain[sweep]' (or optuna), or use +sweep=grid",
            ) from exc
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if sampler == "random":
            chosen = optuna.samplers.RandomSampler(seed=seed)
        else:
            chosen = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        self.study = optuna.create_study(direction="maximize" if maximize else "minimize", sampler=chosen)
        self.distributions = {k: _distribution(k, d) for k, d in domains.items()}
        self.fixed = fixed
        self._reported: dict[int, int] = {}

    def next_request(self) -> TrialRequest | None:
        trial = self.study.ask(self.distributions)
        params = dict(trial.params)
        label = overrides_of(params)
        return TrialRequest(overrides=[*self.fixed, *label], label=label, params=params, token=trial)

    def report(self, outcome: TrialOutcome, curve: list[float]) -> None:
        """Live values of a running child, as the trial's intermediate values."""
        trial = outcome.request.token
        if trial is None:
            return
        done = self._reported.get(trial.number, 0)
        for step in range(done, len(curve)):
            trial.report(curve[step], step)
        self._reported[trial.number] = len(curve)

    def done(self, outcome: TrialOutcome) -> None:
        from optuna.trial import TrialState

        trial = outcome.request.token
        if trial is None:
            return
        if outcome.status == COMPLETED and outcome.value is not None:
            self.study.tell(trial, outcome.value)
        elif outcome.early_terminated:
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)


def make_source(settings: SweepConfig, arguments: list[str]) -> TrialSource:
    """The trial source of ``sweep`` settings and the sweeper's command-line ``arguments``."""
    sampler = str(settings.sampler or "grid")
    if sampler not in SAMPLERS:
        raise ConfigError(f"sweep.sampler={sampler!r} is not a sampler", hint=f"use one of: {', '.join(SAMPLERS)}")
    command_line, fixed = command_line_space(arguments)
    domains = {**parse_space(settings.search_space), **command_line}
    if sampler == "grid":
        return GridSource(domains, fixed)
    if not domains:
        raise ConfigError(f"a {sampler} sweep needs a search space", hint="set sweep.search_space (conf/sweep/)")
    if not settings.max_total_runs:
        raise ConfigError(f"a {sampler} sweep needs sweep.max_total_runs", hint="e.g. sweep.max_total_runs=20")
    if not settings.primary_metric.name:
        raise ConfigError(
            f"a {sampler} sweep needs sweep.primary_metric.name", hint="the metric the script logs, e.g. accuracy"
        )
    return OptunaSource(domains, fixed, sampler, settings.seed, settings.maximize)


def sweep(hydra_context: Any, config: Any, launcher: Any, app: SweepApp | None, arguments: list[str]) -> Any:
    """The sweeper's ``sweep()``: the trials of ``arguments`` and the ``sweep`` settings as one sweep
    through ``app``'s entry point (mltrain's app and launcher), or else every grid combination as one
    batch of the configured launcher."""
    from omegaconf import OmegaConf

    if app is not None:
        run(app, hydra_context, config, lambda settings: make_source(settings, arguments))
        return []
    settings = check(as_settings(OmegaConf.to_object(config.sweep) if "sweep" in config else None))
    source = make_source(settings, arguments)
    jobs = []
    while (request := source.next_request()) is not None and len(jobs) < (settings.max_total_runs or 1e9):
        jobs.append(request.overrides)
    return [launcher.launch(jobs, initial_job_idx=0)]
