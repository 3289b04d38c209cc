"""Core of mltrain's Hydra launcher and sweeper plugins (plugins/hydra_plugins/): the sweep of a
:class:`~mltrain.runs.sweep.entry.SweepApp` as its entry point runs it, or any other app's jobs as
Hydra's basic launcher runs them.

A batch of jobs given to the launcher (by Hydra's basic sweeper, say) is one sweep whose children
are those jobs, composed in the launcher's thread by one :class:`~mltrain.runs.sweep.compose.TrialComposer`
and run concurrently; each job gets a Hydra ``JobReturn``: the child's exit code as its return value,
its composed config and overrides, its run folder as its working directory. ``run_job`` is not used:
it runs a task function in the calling thread, in Hydra's output folder, one job at a time, while a
sweep's trials run concurrently in folders of their own (``hydra.run.dir=.``, ``output_subdir=null``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mltrain.runs.sweep.compose import TrialComposer
from mltrain.runs.sweep.entry import SweepApp
from mltrain.runs.sweep.progress import Progress
from mltrain.runs.sweep.trials import SourceFactory, SweepResult, SweepSpec, TrialOutcome, TrialRequest


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


def run(app: SweepApp, hydra_context: Any, config: Any, source: SourceFactory) -> tuple[SweepResult, TrialComposer]:
    """Run the sweep of Hydra's multirun ``config`` with the trials of ``source`` through ``app``'s
    entry point; its result and the composer of its trials."""
    with TrialComposer(hydra_context.config_loader, config) as composer:
        base, overrides, settings = composer.base()
        spec = SweepSpec(base, settings, overrides, composer.compose, source, Progress)
        return app.sweep(spec), composer


def launch(app: SweepApp, hydra_context: Any, config: Any, job_overrides: Sequence[Sequence[str]]) -> list[Any]:
    """The launcher's jobs as one sweep of ``app``; one Hydra ``JobReturn`` per job."""
    listed = ListSource(job_overrides)
    _, composer = run(app, hydra_context, config, lambda settings: listed)
    return job_returns(composer, listed)


def job_returns(composer: TrialComposer, source: ListSource) -> list[Any]:
    """One Hydra ``JobReturn`` per requested job, completed with the child's exit code as its return
    value (130 for a job the sweep never started); a job that could not be composed has no config."""
    from hydra.core.utils import JobReturn, JobStatus

    returns = []
    for request in source.requests:
        outcome = source.outcomes.get(id(request))
        ret = JobReturn(overrides=list(request.overrides), status=JobStatus.COMPLETED)
        hydra = composer.hydra_config(outcome.number) if outcome is not None else None
        if outcome is not None and hydra is not None:
            ret.hydra_cfg = hydra
            ret.cfg = composer.composed[outcome.number][0]
            ret.task_name = str(hydra.hydra.job.name)
        ret.working_dir = str(outcome.result.run_dir) if outcome is not None and outcome.result else ""
        ret.return_value = outcome.exit_code if outcome is not None else 130
        returns.append(ret)
    return returns


def launch_basic(
    hydra_context: Any, config: Any, task_function: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[Any]:
    """Any other app's jobs as Hydra's basic launcher runs them: one after another in this process,
    each composed by Hydra and run by ``run_job`` in its folder under ``hydra.sweep.dir``."""
    from hydra.core.utils import configure_log, run_job, setup_globals
    from omegaconf import open_dict

    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    returns = []
    for number, overrides in enumerate(job_overrides, start=initial_job_idx):
        job_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(job_config):
            job_config.hydra.job.id = job_config.hydra.job.num = number
        returns.append(
            run_job(
                hydra_context=hydra_context,
                task_function=task_function,
                config=job_config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        )
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return returns
