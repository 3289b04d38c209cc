"""``azureml.train.hyperdrive``: Azure's hyperparameter tuning as an mltrain sweep.

``HyperDriveConfig(run_config=ScriptRunConfig, hyperparameter_sampling=..., policy=..., primary_metric_name,
primary_metric_goal, max_total_runs, max_concurrent_runs)`` submitted by ``Experiment.submit`` runs
``python -m mltrain -m`` with the script's arguments as ``job.arguments`` and the sampled ones
(``--C`` → ``job.arguments.C``) as ``sweep.search_space``; the policies are ``sweep.early_termination``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ...core._api import quoted
from ...core._unsupported import unsupported
from ...core.script_run import ScriptRun


# -- parameter expressions -----------------------------------------------------------------------------
class _Expression:
    def __init__(self, kind: str, *args: Any) -> None:
        self.kind, self.args = kind, args

    def space(self) -> str:
        """The expression of mltrain's ``sweep.search_space``."""
        return f"{self.kind}({', '.join(_text(a) for a in self.args)})"

    def __repr__(self) -> str:
        return self.space()


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def choice(*options: Any) -> _Expression:
    values = list(options[0]) if len(options) == 1 and isinstance(options[0], (list, tuple, range)) else list(options)
    return _Expression("choice", *values)


def uniform(min_value: float, max_value: float) -> _Expression:
    return _Expression("uniform", min_value, max_value)


def loguniform(min_value: float, max_value: float) -> _Expression:
    """Azure's loguniform: exp(uniform(min_value, max_value)), i.e. values between e**min and e**max."""
    return _Expression("loguniform", math.exp(min_value), math.exp(max_value))


def quniform(min_value: float, max_value: float, q: float) -> _Expression:
    return _Expression("quniform", min_value, max_value, q)


def randint(upper: int) -> _Expression:
    """An integer in [0, upper)."""
    return _Expression("randint", 0, upper)


def _unsupported_distribution(name: str) -> Any:
    def make(*args: Any, **kwargs: Any) -> Any:
        raise unsupported(
            f"hyperdrive.{name}", "use choice, uniform, loguniform, quniform or randint (mltrain's search spaces)"
        )

    return make


normal = _unsupported_distribution("normal")
lognormal = _unsupported_distribution("lognormal")
qnormal = _unsupported_distribution("qnormal")
qlognormal = _unsupported_distribution("qlognormal")
qloguniform = _unsupported_distribution("qloguniform")


# -- sampling ------------------------------------------------------------------------------------------
class _Sampling:
    sampler = ""

    def __init__(self, parameter_space: dict[str, Any], **kwargs: Any) -> None:
        if not isinstance(parameter_space, dict) or not parameter_space:
            raise ValueError(f"{type(self).__name__} needs a dict of parameter expressions")
        extra = {k: v for k, v in kwargs.items() if v is not None and k not in ("seed",)}
        if extra:
            raise unsupported(f"{type(self).__name__}({', '.join(extra)}=...)", "give the parameter space (and seed)")
        self.parameter_space = parameter_space
        self.seed = kwargs.get("seed")
        for name, expr in parameter_space.items():
            if not isinstance(expr, _Expression):
                raise TypeError(f"parameter {name!r}: use choice(...), uniform(...), ... of azureml.train.hyperdrive")


class RandomParameterSampling(_Sampling):
    sampler = "random"


class GridParameterSampling(_Sampling):
    sampler = "grid"

    def __init__(self, parameter_space: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(parameter_space, **kwargs)
        bad = [k for k, e in parameter_space.items() if e.kind != "choice"]
        if bad:
            raise ValueError(f"GridParameterSampling takes choice() only: {', '.join(bad)}")


class BayesianParameterSampling(_Sampling):
    sampler = "bayesian"


# -- early termination ---------------------------------------------------------------------------------
class _Policy:
    name: str | None = None

    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 0, **options: Any) -> None:
        self.options = {"evaluation_interval": evaluation_interval, "delay_evaluation": delay_evaluation, **options}

    def overrides(self) -> list[str]:
        if self.name is None:
            return []
        out = [f"sweep.early_termination.policy={self.name}"]
        out += [f"sweep.early_termination.{k}={v}" for k, v in self.options.items() if v is not None]
        return out


class BanditPolicy(_Policy):
    name = "bandit"

    def __init__(
        self,
        evaluation_interval: int = 1,
        slack_factor: float | None = None,
        slack_amount: float | None = None,
        delay_evaluation: int = 0,
    ) -> None:
        if (slack_factor is None) == (slack_amount is None):
            raise ValueError("BanditPolicy takes one of slack_factor and slack_amount")
        super().__init__(evaluation_interval, delay_evaluation, slack_factor=slack_factor, slack_amount=slack_amount)


class MedianStoppingPolicy(_Policy):
    name = "median_stopping"


class TruncationSelectionPolicy(_Policy):
    name = "truncation_selection"

    def __init__(self, truncation_percentage: int, evaluation_interval: int = 1, delay_evaluation: int = 0) -> None:
        super().__init__(evaluation_interval, delay_evaluation, truncation_percentage=truncation_percentage)


class NoTerminationPolicy(_Policy):
    name = None


class PrimaryMetricGoal:
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


# -- the config and its run ----------------------------------------------------------------------------
class HyperDriveConfig:
    """A sweep of ``run_config`` (a ScriptRunConfig) over ``hyperparameter_sampling``."""

    def __init__(
        self,
        hyperparameter_sampling: _Sampling,
        primary_metric_name: str,
        primary_metric_goal: str,
        max_total_runs: int | None = None,
        max_concurrent_runs: int | None = None,
        max_duration_minutes: float | None = None,
        policy: _Policy | None = None,
        estimator: Any = None,
        run_config: Any = None,
        resume_from: Any = None,
        resume_child_runs: Any = None,
        pipeline: Any = None,
        debug_flag: Any = None,
        **kwargs: Any,
    ) -> None:
        for arg, given in (("estimator", estimator), ("resume_from", resume_from), ("pipeline", pipeline)):
            if given is not None:
                hint = "continue a sweep with python -m mltrain -m sweep.resume=ID" if arg == "resume_from" else ""
                raise unsupported(f"HyperDriveConfig({arg}=...)", hint or "give run_config=ScriptRunConfig(...)")
        if run_config is None:
            raise ValueError("HyperDriveConfig needs run_config=ScriptRunConfig(...)")
        if str(primary_metric_goal).upper() not in (PrimaryMetricGoal.MAXIMIZE, PrimaryMetricGoal.MINIMIZE):
            raise ValueError("primary_metric_goal is PrimaryMetricGoal.MAXIMIZE or PrimaryMetricGoal.MINIMIZE")
        if hyperparameter_sampling.sampler != "grid" and not max_total_runs:
            raise ValueError(f"{type(hyperparameter_sampling).__name__} needs max_total_runs")
        self.run_config = run_config
        self.sampling = hyperparameter_sampling
        self.policy = policy or NoTerminationPolicy()
        self.primary_metric_name = primary_metric_name
        self.primary_metric_goal = str(primary_metric_goal).upper()
        self.max_total_runs = max_total_runs
        self.max_concurrent_runs = max_concurrent_runs
        self.max_duration_minutes = max_duration_minutes

    def _submit(self, experiment: Any) -> HyperDriveRun:
        """Start the sweep in ``experiment`` (``Experiment.submit``)."""
        ws = experiment.workspace
        run = ws._api.sweep(*self.overrides(ws._ws.path), f"experiment_name={quoted(experiment.name)}")
        return HyperDriveRun(experiment, run, self)

    def overrides(self, workspace_root: Path) -> list[str]:
        """The overrides of the sweep (``python -m mltrain -m ...``)."""
        arguments = self.run_config.arguments_mapping()
        space = {}
        for name, expr in self.sampling.parameter_space.items():
            key = str(name).lstrip("-")
            arguments.pop(key, None)  # sampled: not fixed
            space[f"job.arguments.{key}"] = expr.space()
        fixed = ",".join(f"{key}:{'true' if v is True else quoted(v, always=True)}" for key, v in arguments.items())
        names = {f"job.arguments.{k}" for k in arguments}
        for key in space:
            if key in names:
                continue
            fixed += ("," if fixed else "") + f"{key.removeprefix('job.arguments.')}:null"
        out = [
            *self.run_config.overrides(workspace_root, arguments=False),
            "job.arguments=null",
            "job.arguments={" + fixed + "}",
            f"sweep.sampler={self.sampling.sampler}",
            "++sweep.search_space={" + ",".join(f"{k}:{quoted(v, always=True)}" for k, v in space.items()) + "}",
            f"sweep.primary_metric.name={quoted(self.primary_metric_name, always=True)}",
            f"sweep.primary_metric.goal={self.primary_metric_goal.lower()}",
            *self.policy.overrides(),
        ]
        if self.max_total_runs:
            out.append(f"sweep.max_total_runs={int(self.max_total_runs)}")
        if self.max_concurrent_runs:
            out.append(f"sweep.max_concurrent_runs={int(self.max_concurrent_runs)}")
        if self.max_duration_minutes:
            out.append(f"sweep.max_duration_s={float(self.max_duration_minutes) * 60}")
        if self.sampling.seed is not None:
            out.append(f"sweep.seed={int(self.sampling.seed)}")
        return out


class HyperDriveRun(ScriptRun):
    """A submitted HyperDriveConfig: the sweep run, its children and the best of them."""

    def __init__(self, experiment: Any, run: Any, config: HyperDriveConfig | None = None) -> None:
        super().__init__(experiment, run)
        self.hyperdrive_config = config

    def get_children(self, **kwargs: Any) -> Any:
        return iter(ScriptRun(self.experiment, child) for child in self._run.children)

    def get_best_run_by_primary_metric(
        self, include_failed: bool = True, include_canceled: bool = True, include_resume_from_runs: bool = True
    ) -> ScriptRun | None:
        """The child with the best value of the primary metric (None when none logged it)."""
        best = self._run.best
        if best is None:
            ranked = self.get_children_sorted_by_primary_metric(discard_no_metric=True)
            if not ranked:
                return None
            best = next(c for c in self._run.children if c.id == ranked[0]["run_id"])
        return ScriptRun(self.experiment, best)

    def get_children_sorted_by_primary_metric(
        self, top: int = 0, reverse: bool = False, discard_no_metric: bool = False
    ) -> list[dict[str, Any]]:
        """The children, best first (``reverse``: worst first): run_id, hyperparameters (JSON of the
        sampled arguments), best_primary_metric, status."""
        tags = self._run.tags
        metric = tags.get("mltrain.sweep.primary_metric")
        maximize = tags.get("mltrain.sweep.goal", "maximize") == "maximize"
        rows = []
        for child in self._run.children:
            rec = child.record
            values = [p.value for p in child.metrics(metric)] if metric else []
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            best = (max(numbers) if maximize else min(numbers)) if numbers else None
            if best is None and discard_no_metric:
                continue
            rows.append(
                {
                    "run_id": rec.id,
                    "hyperparameters": json.dumps(_arguments(rec.arguments or [])),
                    "best_primary_metric": best,
                    "status": rec.status,
                }
            )
        with_metric = sorted(
            (r for r in rows if r["best_primary_metric"] is not None),
            key=lambda r: r["best_primary_metric"],
            reverse=maximize,
        )
        ordered = with_metric + [r for r in rows if r["best_primary_metric"] is None]
        if reverse:
            ordered = with_metric[::-1] + [r for r in rows if r["best_primary_metric"] is None]
        return ordered[:top] if top else ordered

    def get_metrics(self, name: str | None = None, recursive: bool = False, **kwargs: Any) -> dict[str, Any]:
        """The metrics of each child, by run id."""
        return {child.id: child.get_metrics(name) for child in self.get_children()}

    def cancel(self) -> None:
        self._run.cancel()


def _arguments(argv: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            out[arg] = "" if nxt.startswith("--") else nxt
    return out


__all__ = [
    "BanditPolicy",
    "BayesianParameterSampling",
    "GridParameterSampling",
    "HyperDriveConfig",
    "HyperDriveRun",
    "MedianStoppingPolicy",
    "NoTerminationPolicy",
    "PrimaryMetricGoal",
    "RandomParameterSampling",
    "TruncationSelectionPolicy",
    "choice",
    "loguniform",
    "quniform",
    "randint",
    "uniform",
]
