"""A sweep's parent run and what its trials share: open, prepare trials, finish.

``Sweep.open(source)`` builds the first run plan (prewarming the compute target), composes and plans
the first trial the source gives, and only then records the parent run (or reopens the one
``sweep.resume`` names), so a sweep whose first trial cannot be composed or planned is a config error
that leaves no trace, as a single run's is. ``prepare(request)`` turns a request into a
:class:`~mltrain.runs.trial.Trial` of the plan it shares (nothing recorded yet); the scheduler
(:mod:`mltrain.runs.sweep.scheduler`) runs them. ``finish()`` gives the parent its final status and
summary, registers the best child's model (``sweep.register``) and returns the exit code.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mltrain.compute.configs import redact_overrides, redact_secrets
from mltrain.environments.variables import read_references
from mltrain.errors import ConfigError, MltrainError
from mltrain.registry.configs import register_request
from mltrain.runs.control import RunControl
from mltrain.runs.handoff import announce
from mltrain.runs.plan import RunPlan, open_workspace
from mltrain.runs.result import EXIT_CODES
from mltrain.runs.sweep.policies import make_policy
from mltrain.runs.sweep.settings import as_settings
from mltrain.runs.sweep.tags import BEST_RUN_TAG, KEY_TAG, PARAMS_TAG, SWEEP_TAG, TRIAL_TAG
from mltrain.runs.sweep.trials import (
    Stop,
    SweepProgress,
    SweepSpec,
    TrialOutcome,
    TrialRequest,
    TrialSource,
    label_key,
    metric_value,
)
from mltrain.runs.trial import Trial
from mltrain.workspace.runs import ACTIVE, CANCELED, COMPLETED, FAILED, QUEUED, RUNNING, new_run_id

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


@dataclass
class Prepared:
    """A trial composed and planned, not recorded yet."""

    outcome: TrialOutcome
    trial: Trial


class Sweep:
    """One sweep (a parent run) of mltrain trials; use as a context manager around :meth:`open`, the
    scheduler's run and :meth:`finish`."""

    def __init__(self, spec: SweepSpec) -> None:
        settings = spec.settings
        self.spec = spec
        self.base = spec.base
        self.settings = settings
        self.metric = settings.primary_metric.name
        self.maximize = settings.maximize
        self.policy = make_policy(settings.early_termination, self.maximize)
        self.max_concurrent = 0  # set by the first plan: sweep.max_concurrent_runs, else the target's capacity
        self.failed_fast = False  # a child failed with sweep.fail_fast: no other starts
        self.ws: Workspace = open_workspace(spec.base)
        self.control = RunControl.current()
        self.plans: list[RunPlan] = []
        self.outcomes: list[TrialOutcome] = []
        self.trials: dict[str, Trial] = {}
        self.kept: dict[str, TrialOutcome] = {}
        self.next_number = 0
        self.started = time.time()
        self.sweep_id = ""
        self.stopped: Stop | None = None
        self.progress: SweepProgress | None = None

    # -- the parent run ---------------------------------------------------------------------------
    def open(self, source: TrialSource) -> Prepared | None:
        """Record the parent run once the first trial is ready; that trial (None: no trial to run)."""
        plan = self._plan_for(self.base)
        driver = {k: v for k, v in plan.record_fields().items() if k.startswith("driver_")}
        resumed = self._resumed(str(self.settings.resume)) if self.settings.resume else None
        first = None
        request = self.next_request(source)
        if request is not None:
            first = self.prepare(request, first=True)
        if resumed is not None:
            self.sweep_id = resumed
            self.ws.runs.reopen(resumed, detail=f"resumed ({len(self.kept)} completed children kept)", **driver)
        else:
            self._record(plan)
        announce(self.sweep_id, self.ws.run_dir(self.sweep_id))  # to whoever started it detached
        self.progress = self.spec.progress(self.ws.run_dir(self.sweep_id), self.metric, self.spec.echo)
        for outcome in self.outcomes:  # kept from the attempt being resumed
            self.progress.kept(outcome)
        self.progress.note(
            f"sweep {self.sweep_id} (experiment {self.base['experiment_name']}): up to {self.max_concurrent} "
            f"children at a time; `mltrain runs cancel {self.sweep_id}` or Ctrl-C cancels it"
        )
        if first is not None:
            first.trial.parent_run_id = self.sweep_id
        return first

    def _record(self, plan: RunPlan) -> None:
        self.sweep_id = new_run_id()
        run_dir = self.ws.run_dir(self.sweep_id)
        run_dir.mkdir(parents=True)
        self.ws.runs.create(
            self.sweep_id,
            str(self.base["experiment_name"]),
            config=redact_secrets(self.base),  # a cluster token is never stored
            overrides=redact_overrides(self.spec.overrides),
            arguments=[],
            run_dir=str(run_dir),
            **plan.record_fields(),
        )
        self.ws.runs.set_tags(
            self.sweep_id,
            {
                SWEEP_TAG: "parent",
                "mltrain.sweep.sampler": str(self.settings.sampler or "grid"),
                "mltrain.sweep.primary_metric": str(self.metric or ""),
                "mltrain.sweep.goal": self.settings.primary_metric.goal,
            },
        )
        self.ws.runs.set_status(self.sweep_id, RUNNING, detail="sweep started")

    def _resumed(self, sweep_id: str) -> str:
        """The id of the sweep to resume, checked, with its completed children kept (nothing written)."""
        from mltrain.runs.recovery import recover_orphans

        recover_orphans(self.ws)
        run = self.ws.runs.get(sweep_id)
        if self.ws.runs.tags(run["id"]).get(SWEEP_TAG) != "parent":
            raise ConfigError(
                f"run {run['id']} is not a sweep", hint="give sweep.resume the id of a sweep's parent run"
            )
        if run["status"] in ACTIVE:
            raise ConfigError(f"sweep {run['id']} is still {run['status']}", hint="cancel it first, or wait")
        before = as_settings((run["config"] or {}).get("sweep")).searched()
        now = self.settings.searched()
        changed = [f"sweep.{k} was {before[k]!r}, now {now[k]!r}" for k in now if before[k] != now[k]]
        if changed:
            raise ConfigError(
                f"sweep {run['id']} searched differently: {'; '.join(changed)}",
                hint="resume it with the configs it was started with, or start a new sweep",
            )
        for child in self.ws.runs.list(parent_run_id=run["id"], limit=None):
            tags = self.ws.runs.tags(child["id"])
            self.next_number = max(self.next_number, int(tags.get(TRIAL_TAG, -1)) + 1)
            if child["status"] != COMPLETED or KEY_TAG not in tags:
                continue
            label = json.loads(tags[KEY_TAG])
            metrics = self.ws.metrics.summary(child["id"])
            request = TrialRequest(overrides=label, label=label, params=json.loads(tags.get(PARAMS_TAG, "{}")))
            self.kept[label_key(label)] = TrialOutcome(
                request,
                int(tags.get(TRIAL_TAG, 0)),
                child["id"],
                COMPLETED,
                value=metric_value(metrics.get(self.metric)) if self.metric else None,
                kept=True,
            )
        return str(run["id"])

    def _plan_for(self, config: dict[str, Any]) -> RunPlan:
        for plan in self.plans:
            if plan.shares(config):
                return plan
        plan = RunPlan.build(config, self.ws)
        self.plans.append(plan)
        if not self.max_concurrent:
            self.max_concurrent = self._concurrency(plan)
        if self.settings.prewarm:
            self._prewarm(plan, config)
        return plan

    def _concurrency(self, plan: RunPlan) -> int:
        """``sweep.max_concurrent_runs`` when set, else what the compute target holds at once (an SSH
        pool's slots, a Ray cluster's capacity for the per-run resources), else the CPU count."""
        if self.settings.max_concurrent_runs:
            return int(self.settings.max_concurrent_runs)
        try:
            capacity = plan.compute.capacity()
        except MltrainError as exc:
            print(f"[sweep] the compute target's capacity is unknown ({exc}); using the CPU count", flush=True)
            capacity = None
        if capacity is not None and capacity < 1:
            raise ConfigError(
                f"{plan.compute.describe()} has room for no run with the resources each asks for",
                hint="ask for fewer resources per run (compute.num_cpus, compute.resources) or add nodes",
            )
        return capacity or os.cpu_count() or 1

    def _prewarm(self, plan: RunPlan, config: dict[str, Any]) -> None:
        from mltrain.compute.base import RunSpec
        from mltrain.remote.imports import script_imports

        built = plan.prepare(lambda line: print(f"[build] {line}", flush=True))
        modules = self.settings.prewarm_modules
        if modules is None:
            modules = script_imports(plan.source, plan.script)
        spec = RunSpec(
            run_id="",
            experiment="",
            run_dir=plan.source,
            snapshot_id=plan.snapshot.id,
            script=plan.script,
            env_vars=read_references(config["job"]["env_vars"], "job.env_vars"),
            shim_dir=plan.shim_dir,
            inputs=plan.data.input_specs,  # the trials' data: a Ray pool serves the folder staged with it
            outputs=plan.data.outputs,
        )
        plan.compute.prewarm(built, spec, list(modules), self.max_concurrent)

    # -- trials -----------------------------------------------------------------------------------
    def counted(self) -> int:
        """Trials that count against ``sweep.max_total_runs``: those run (or failed to compose) and
        those kept from the attempt being resumed."""
        return sum(1 for o in self.outcomes if not o.kept) + len(self.kept)

    def next_request(self, source: TrialSource, ahead: int = 0) -> TrialRequest | None:
        """The next trial to run, None when the source or ``max_total_runs`` is exhausted (counting
        ``ahead`` trials composed but not started); a request a resumed sweep already completed is
        passed on as its kept outcome (the last of ``self.outcomes``)."""
        while True:
            limit = self.settings.max_total_runs
            if limit is not None and self.counted() + ahead >= int(limit):
                return None
            request = source.next_request()
            if request is None:
                return None
            kept = self.kept.get(label_key(request.label))
            if kept is None:
                return request
            kept.request.token = request.token
            self.outcomes.append(kept)
            if self.progress is not None:
                self.progress.kept(kept)
            source.done(kept)

    def prepare(self, request: TrialRequest, first: bool = False) -> Prepared | None:
        """The trial of ``request``, composed and planned (nothing recorded yet); None when it cannot
        be (then a failed outcome is the last of ``self.outcomes``). The ``first`` trial that cannot
        is the sweep's own error, raised."""
        number = self.next_number
        self.next_number += 1
        outcome = TrialOutcome(request, number, None, QUEUED)
        try:
            config, overrides = self.spec.compose(request.overrides, number)
            config = dict(config)
            outcome.config, outcome.overrides = config, overrides
            trial = Trial(
                self._plan_for(config),
                config,
                overrides,
                parent_run_id=self.sweep_id,
                echo=False,
                control=self.control,
                defer_models=self.settings.register != "all",
            )
        except MltrainError as exc:
            if first:  # the first trial cannot be composed or planned: the sweep is wrong
                raise
            outcome.status, outcome.error = FAILED, f"{exc}"
            self.outcomes.append(outcome)
            assert self.progress is not None
            self.progress.finished(outcome)
            return None
        outcome.run_id = trial.run_id
        return Prepared(outcome, trial)

    def stop(self, stop: Stop, note: bool = True) -> None:
        """Start no more children and cancel the running ones with ``stop.reason``."""
        self.stopped = stop
        if note and self.progress is not None:
            self.progress.note(stop.reason)

    def stopping(self) -> bool:
        return bool(self.stopped or self.control.reason or self.failed_fast)

    # -- the end ------------------------------------------------------------------------------------
    def best(self) -> TrialOutcome | None:
        scored = [o for o in self.outcomes if o.status == COMPLETED and o.value is not None]
        if not scored:
            return None
        return max(scored, key=lambda o: o.value if self.maximize else -o.value)  # type: ignore[operator]

    def finish(self) -> int:
        """Final status, summary and registration; the exit code of the sweep."""
        assert self.progress is not None
        failed = [o for o in self.outcomes if o.status == FAILED]
        canceled = [o for o in self.outcomes if o.status == CANCELED and not o.early_terminated]
        stopped = [o for o in self.outcomes if o.early_terminated]
        done = [o for o in self.outcomes if o.status == COMPLETED]
        best = self.best()
        if self.stopped is not None and self.stopped.cause.cancels_sweep:
            status = CANCELED
        elif failed:
            status = FAILED
        else:
            status = COMPLETED
        models, problems = [], []
        if best is not None and self.settings.register == "best" and status != CANCELED:
            models, problems = self._register_best(best)
        summary = f"{len(done)} completed, {len(failed)} failed, {len(canceled)} canceled, {len(stopped)} stopped early"
        now = time.time()
        records = [
            {"k": "children_completed", "v": len(done), "t": now},
            {"k": "children_failed", "v": len(failed), "t": now},
            {"k": "children_canceled", "v": len(canceled), "t": now},
            {"k": "children_early_terminated", "v": len(stopped), "t": now},
        ]
        tags: dict[str, str] = {}
        if best is not None and best.run_id:
            records.append({"k": f"best_{self.metric}", "v": best.value, "t": now})
            tags[BEST_RUN_TAG] = best.run_id
        self.ws.metrics.add(self.sweep_id, records)
        self.ws.runs.set_tags(self.sweep_id, tags)
        if status == CANCELED:
            assert self.stopped is not None
            error: str | None = self.stopped.reason
        else:
            error = f"{len(failed)} children failed" if failed else None
        self.ws.runs.set_status(self.sweep_id, status, detail=summary, error=error)
        self.progress.summary(self.sweep_id, status, summary, self.outcomes, best, self.maximize, models, problems)
        if status == CANCELED:
            return EXIT_CODES[CANCELED]
        return 1 if failed or problems else 0

    def _register_best(self, best: TrialOutcome) -> tuple[list[Any], list[str]]:
        """Register the best child's model (tagged with the sweep); (model versions, problems)."""
        trial = self.trials.get(best.run_id or "")
        config = trial.cfg if trial is not None else (best.config or self.base)
        register = register_request(config.get("register"))
        if register is not None:
            register["tags"] = {**(register.get("tags") or {}), "sweep": self.sweep_id}
        if trial is not None and best.result is not None:
            trial.cfg = {**trial.cfg, "register": register}
            trial.finish_models(best.result)
            return list(best.result.models), list(best.result.problems)
        if register is None or best.run_id is None:  # kept from an earlier attempt: its config's request only
            return [], []
        from mltrain.registry.from_run import register_from_run_id
        from mltrain.runs.finalize import record_problems

        try:
            return [register_from_run_id(self.ws, best.run_id, register)], []
        except MltrainError as exc:
            problems = [f"registration of {register.get('name')} failed: {exc}"]
            record_problems(self.ws, best.run_id, problems)
            return [], problems

    def __enter__(self) -> Sweep:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is not None and self.sweep_id:
            self.ws.runs.set_status(self.sweep_id, FAILED, detail="sweep error", error=str(exc))
        for plan in self.plans:
            plan.close()
        if self.progress is not None:
            self.progress.close()
