"""The sweep entry point of an app, how mltrain's Hydra plugins find it, and what it runs.

An app whose task function is a method of an object with ``sweep(spec) -> SweepResult`` (a
:class:`SweepApp`, as ``python -m mltrain``'s :class:`~mltrain.config.app.App`) runs a multirun as
one sweep: mltrain's launcher and sweeper build the :class:`~mltrain.runs.sweep.trials.SweepSpec`
from Hydra's context (:mod:`mltrain.runs.sweep.launcher`) and call ``sweep``, which runs it with
:func:`run_sweep` and keeps its exit code. Any other app's jobs are run as Hydra runs them.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from mltrain.errors import MltrainError
from mltrain.runs.plan import workspace_settings
from mltrain.runs.sweep.scheduler import Scheduler
from mltrain.runs.sweep.session import Sweep
from mltrain.runs.sweep.settings import check
from mltrain.runs.sweep.trials import SweepResult, SweepSpec
from mltrain.text import print_error


@runtime_checkable
class SweepApp(Protocol):
    def sweep(self, spec: SweepSpec) -> SweepResult:
        """Run ``spec`` as one sweep (a parent run, a child per trial); its exit code and outcomes."""


def sweep_app(task_function: Any) -> SweepApp | None:
    """The app that ``task_function`` (Hydra's task function) is a method of, when it runs sweeps."""
    owner = getattr(task_function, "__self__", None)
    return owner if isinstance(owner, SweepApp) else None


def run_sweep(spec: SweepSpec) -> SweepResult:
    """Run a whole sweep: its exit code and the outcomes of its trials. An error in its config (its
    settings, its search space, its first trial) is reported and gives exit code 2 with nothing
    recorded."""
    from mltrain.runs import preconnect
    from mltrain.workspace import discard_new, is_new

    preconnect.remember(spec.base.get("compute"))  # the next run of this command line connects to its hosts at once
    settings = workspace_settings(spec.base)
    new = is_new(settings)  # a sweep refused by its checks leaves no workspace behind
    sweep: Sweep | None = None
    try:
        source = spec.source(check(spec.settings))
        with Sweep(spec) as sweep:
            first = sweep.open(source)  # the parent run is recorded once its first trial is ready
            Scheduler(sweep, source).run(first)
            return SweepResult(sweep.finish(), sweep.outcomes)
    except MltrainError as exc:
        print_error(exc)
        if new and (sweep is None or not sweep.sweep_id):
            discard_new(settings)
        return SweepResult(exc.exit_code)
    finally:
        preconnect.end()
