"""The typed ``sweep`` config (conf/sweep/*.yaml, ``sweep.*`` overrides) and its checks.

The schema is part of the root config schema (:mod:`mltrain.config.schema`), so a wrong key or type
fails at composition; a sweep reads its settings as these objects, made once after composition
(``OmegaConf.to_object``), never as dictionaries with defaults of their own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mltrain.errors import ConfigError

SEARCH_KEYS = ("sampler", "search_space", "seed", "primary_metric")  # a resumed sweep searches as it did


@dataclass(repr=False, eq=False)
class PrimaryMetricConfig:
    name: str | None = None  # metric the sweep ranks children by (the last value each child logged)
    goal: str = "maximize"  # maximize | minimize


@dataclass(repr=False, eq=False)
class EarlyTerminationConfig:
    policy: str | None = None  # null | bandit | median_stopping | truncation_selection
    evaluation_interval: int = 1  # evaluate every N reports of the primary metric
    delay_evaluation: int = 0  # first evaluation after this many reports
    slack_factor: float | None = None  # bandit: stop when worse than best / (1 + slack_factor) (maximize)
    slack_amount: float | None = None  # bandit: stop when worse than best - slack_amount (maximize)
    truncation_percentage: int = 20  # truncation_selection: stop the worst N percent at each evaluation


@dataclass(repr=False, eq=False)
class SweepConfig:
    """``python -m mltrain -m ...``: one parent run, one child per trial (conf/sweep/*.yaml)."""

    sampler: str = "grid"  # grid | random | bayesian (with +sweep=NAME; plain -m sweeps the command line)
    search_space: dict[str, str] = field(default_factory=dict)  # key: choice(..)|uniform|loguniform|quniform|randint
    primary_metric: PrimaryMetricConfig = field(default_factory=PrimaryMetricConfig)
    max_total_runs: int | None = None  # at most this many children (random and bayesian: required)
    max_concurrent_runs: int | None = None  # null: what the compute target holds at once, else the CPU count
    max_duration_s: float | None = None  # stop starting children and cancel running ones after this
    seed: int | None = None  # random and bayesian sampling seed
    early_termination: EarlyTerminationConfig = field(default_factory=EarlyTerminationConfig)
    fail_fast: bool = False  # cancel the sweep when a child fails
    register: str = "best"  # best | all | none: whose models are registered
    prewarm: bool = True  # fork children from warm interpreters (local; warm actors on Ray); false: a new process each
    prewarm_modules: list[str] | None = None  # modules the warm interpreters import; null: the script's imports
    resume: str | None = None  # id of an interrupted sweep to continue

    @property
    def maximize(self) -> bool:
        return self.primary_metric.goal == "maximize"

    def searched(self) -> dict[str, Any]:
        """What decides which trials the sweep runs (:data:`SEARCH_KEYS`), as plain values."""
        return {k: _plain(getattr(self, k)) for k in SEARCH_KEYS}


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def as_settings(node: Any) -> SweepConfig:
    """The settings of a ``sweep`` node: a composed config's node as ``OmegaConf.to_object`` gives it,
    or a plain dictionary (a recorded run's), typed by the schema; None: the defaults."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(node, SweepConfig):
        return node
    try:
        settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SweepConfig), node or {}))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"sweep: {exc}", hint="see the sweep keys in the README (Sweeps)") from exc
    assert isinstance(settings, SweepConfig)
    return settings


def check(s: SweepConfig) -> SweepConfig:
    """``s``, once each value that the schema's types cannot refuse is checked (a clear error each)."""
    if s.primary_metric.goal not in ("maximize", "minimize"):
        raise ConfigError(f"sweep.primary_metric.goal={s.primary_metric.goal!r}", hint="use maximize or minimize")
    if s.register not in ("best", "all", "none"):
        raise ConfigError(f"sweep.register={s.register!r}", hint="use best, all or none")
    for key in ("max_total_runs", "max_concurrent_runs"):
        value = getattr(s, key)
        if value is not None and int(value) < 1:
            raise ConfigError(f"sweep.{key}={value!r} must be at least 1", hint="or null for no limit")
    return s
