"""A sweep: one parent run and its children, run concurrently from shared run plans.

``Sweep.run(source)`` asks ``source`` for trials while fewer than ``sweep.max_concurrent_runs`` run,
composes each trial's config (``compose``: Hydra, in the calling thread; grid and random trials
ahead), runs it as a :class:`~mltrain.runs.trial.Trial` of the plan it shares in a worker thread
(one more per slot waits for it, unrecorded, and starts the moment a child's job ended), follows the children's
live metrics (progress, early termination), heartbeats the parent (``mltrain runs cancel SWEEP``
reaches every child) and tells ``source`` each outcome. ``finish()`` gives the parent its final
status and summary, registers the best child's model (``sweep.register``) and returns the exit code.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mltrain.compute.configs import redact_overrides, redact_secrets
from mltrain.environments.variables import read_references
from mltrain.errors import ConfigError, MltrainError
from mltrain.registry.configs import register_request
from mltrain.runs.control import RunControl
from mltrain.runs.plan import RunPlan, open_workspace
from mltrain.runs.result import EXIT_CODES, RunResult
from mltrain.runs.sweep.policies import EARLY_TERMINATION, make_policy
from mltrain.runs.trial import Trial
from mltrain.text import print_error
from mltrain.workspace.runs import ACTIVE, CANCELED, COMPLETED, FAILED, QUEUED, RUNNING, new_run_id

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

POLL_S = 0.3
QUEUED_PER_SLOT = 1  # trials launched ahead per slot: each waits for one (``gate``) and starts the moment it frees
GATE_POLL_S = 0.2
AHEAD_MAX = 256  # most trials composed ahead while the compute target starts
HEARTBEAT_S = 2.0
SWEEP_TAG = "mltrain.sweep"  # on the parent: "parent"; on a child: the parent's id
TRIAL_TAG = "mltrain.sweep.trial"  # a child's trial number
PARAMS_TAG = "mltrain.sweep.params"  # a child's sampled parameters (JSON), for resume
KEY_TAG = "mltrain.sweep.key"  # a child's defining overrides (JSON list), for resume
SEARCH_KEYS = ("sampler", "search_space", "seed", "primary_metric")  # a resumed sweep searches as it did
Compose = Callable[[list[str], int], tuple[dict[str, Any], list[str]]]


@dataclass
class TrialRequest:
    """A trial a source wants: its overrides (all of them, for composition) and what defines it."""

    overrides: list[str]
    label: list[str]  # the overrides that distinguish it (shown, and its identity on resume)
    params: dict[str, Any] = field(default_factory=dict)
    token: Any = None  # the source's own handle (an Optuna trial)


@dataclass
class TrialOutcome:
    request: TrialRequest
    number: int
    run_id: str | None
    status: str
    value: float | None = None  # last value of the primary metric
    error: str | None = None
    kept: bool = False  # completed in an earlier attempt of a resumed sweep, not run again
    curve: list[float] = field(default_factory=list)
    result: RunResult | None = None
    config: dict[str, Any] | None = None
    overrides: list[str] = field(default_factory=list)

    @property
    def early_terminated(self) -> bool:
        return self.status == CANCELED and self.error == EARLY_TERMINATION

    @property
    def exit_code(self) -> int:
        if self.result is not None:
            return self.result.process_exit_code
        return EXIT_CODES.get(self.status, 1)


class TrialSource(Protocol):
    def next_request(self) -> TrialRequest | None:
        """The next trial to run; None when there are no more."""

    def done(self, outcome: TrialOutcome) -> None:
        """A trial ended (or was kept from the sweep being resumed)."""


class SweepProgress(Protocol):
    """What a sweep shows and logs as it goes (:class:`mltrain.runs.sweep.progress.Progress`)."""

    def note(self, line: str) -> None: ...
    def add(self, outcome: TrialOutcome) -> None: ...
    def drop(self, outcome: TrialOutcome) -> None: ...
    def kept(self, outcome: TrialOutcome) -> None: ...
    def update(self, outcome: TrialOutcome) -> None: ...
    def finished(self, outcome: TrialOutcome) -> None: ...
    def render(self) -> None: ...
    def summary(
        self,
        sweep_id: str,
        status: str,
        counts: str,
        outcomes: list[TrialOutcome],
        best: TrialOutcome | None,
        maximize: bool,
        models: list[Any],
        problems: list[str],
    ) -> None: ...
    def close(self) -> None: ...


# the parent run's folder, the primary metric's name, echo to the terminal -> the sweep's progress
ProgressFactory = Callable[[Path, "str | None", bool], SweepProgress]


def label_key(label: list[str]) -> str:
    return json.dumps(sorted(label))


def settings_of(config: dict[str, Any]) -> dict[str, Any]:
    """``config["sweep"]`` checked: a clear error for each bad value."""
    s = dict(config.get("sweep") or {})
    metric = dict(s.get("primary_metric") or {})
    if metric.get("goal", "maximize") not in ("maximize", "minimize"):
        raise ConfigError(f"sweep.primary_metric.goal={metric.get('goal')!r}", hint="use maximize or minimize")
    if s.get("register", "best") not in ("best", "all", "none"):
        raise ConfigError(f"sweep.register={s.get('register')!r}", hint="use best, all or none")
    for key in ("max_total_runs", "max_concurrent_runs"):
        if s.get(key) is not None and int(s[key]) < 1:
            raise ConfigError(f"sweep.{key}={s[key]!r} must be at least 1", hint="or null for no limit")
    s["primary_metric"] = {"name": metric.get("name"), "goal": metric.get("goal", "maximize")}
    return s


class Slots:
    """``size`` slots, taken in ticket order (the order trials were launched), each given back once."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._cond = threading.Condition()
        self._issued = 0
        self._serving = 0

    def ticket(self) -> int:
        with self._cond:
            self._issued += 1
            return self._issued - 1

    def take(self, ticket: int, stopping: Callable[[], bool]) -> bool | None:
        """Wait for a free slot and this ticket's turn: whether it had to wait; None when
        ``stopping()`` said so first (the ticket's turn then passes)."""
        with self._cond:
            waited = False
            while True:
                if stopping():
                    self._serving = max(self._serving, ticket + 1)
                    self._cond.notify_all()
                    return None
                if self.free and self._serving == ticket:
                    break
                waited = True
                self._cond.wait(GATE_POLL_S)
            self.free -= 1
            self._serving += 1
            self._cond.notify_all()
            return waited

    def give(self) -> None:
        with self._cond:
            self.free += 1
            self._cond.notify_all()


class Sweep:
    """One sweep (a parent run) of mltrain trials; use as a context manager around :meth:`run`."""

    def __init__(
        self,
        base_config: dict[str, Any],
        overrides: list[str],
        compose: Compose,
        progress: ProgressFactory,
        echo: bool = True,
    ) -> None:
        self.base = base_config
        self.settings = settings_of(base_config)
        self.overrides = overrides
        self.compose = compose
        self.echo = echo
        self.make_progress = progress
        self.metric = self.settings["primary_metric"]["name"]
        self.maximize = self.settings["primary_metric"]["goal"] == "maximize"
        self.policy = make_policy(self.settings.get("early_termination"), self.maximize)
        self.max_concurrent = 0  # set by the first plan: sweep.max_concurrent_runs, else the target's capacity
        self.gate: Slots | None = None  # held by each child while its job runs
        self.failed_fast = False  # a child failed with sweep.fail_fast: no other starts
        self.max_total = self.settings.get("max_total_runs")
        self.ws: Workspace = open_workspace(base_config)
        self.control = RunControl.current()
        self.plans: list[RunPlan] = []
        self.outcomes: list[TrialOutcome] = []
        self.trials: dict[str, Trial] = {}
        self.kept: dict[str, TrialOutcome] = {}
        self.next_number = 0
        self.started = time.time()
        self.sweep_id = ""
        self.stop_reason: str | None = None
        self.progress: SweepProgress | None = None

    # -- the parent run ---------------------------------------------------------------------------
    def open(self) -> Sweep:
        plan = self._plan_for(self.base)
        driver = {k: v for k, v in plan.record_fields().items() if k.startswith("driver_")}
        resume = self.settings.get("resume")
        if resume:
            self.sweep_id = self._reopen(str(resume), driver)
        else:
            self.sweep_id = new_run_id()
            run_dir = self.ws.run_dir(self.sweep_id)
            run_dir.mkdir(parents=True)
            self.ws.runs.create(
                self.sweep_id,
                str(self.base["experiment_name"]),
                config=redact_secrets(self.base),  # a cluster token is never stored
                overrides=redact_overrides(self.overrides),
                arguments=[],
                run_dir=str(run_dir),
                **plan.record_fields(),
            )
            self.ws.runs.set_tags(
                self.sweep_id,
                {
                    SWEEP_TAG: "parent",
                    "mltrain.sweep.sampler": str(self.settings.get("sampler") or "grid"),
                    "mltrain.sweep.primary_metric": str(self.metric or ""),
                    "mltrain.sweep.goal": self.settings["primary_metric"]["goal"],
                },
            )
            self.ws.runs.set_status(self.sweep_id, RUNNING, detail="sweep started")
        self.progress = self.make_progress(self.ws.run_dir(self.sweep_id), self.metric, self.echo)
        self.progress.note(
            f"sweep {self.sweep_id} (experiment {self.base['experiment_name']}): up to {self.max_concurrent} "
            f"children at a time; `mltrain runs cancel {self.sweep_id}` or Ctrl-C cancels it"
        )
        return self

    def _reopen(self, sweep_id: str, driver: dict[str, Any]) -> str:
        from mltrain.runs.recovery import recover_orphans

        recover_orphans(self.ws)
        run = self.ws.runs.get(sweep_id)
        if self.ws.runs.tags(run["id"]).get(SWEEP_TAG) != "parent":
            raise ConfigError(
                f"run {run['id']} is not a sweep", hint="give sweep.resume the id of a sweep's parent run"
            )
        if run["status"] in ACTIVE:
            raise ConfigError(f"sweep {run['id']} is still {run['status']}", hint="cancel it first, or wait")
        before = settings_of(run["config"] or {})
        now = self.settings
        changed = [
            f"sweep.{k} was {before.get(k)!r}, now {now.get(k)!r}" for k in SEARCH_KEYS if before.get(k) != now.get(k)
        ]
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
                value=_number(metrics.get(self.metric)) if self.metric else None,
                kept=True,
            )
        self.ws.runs.reopen(run["id"], detail=f"resumed ({len(self.kept)} completed children kept)", **driver)
        return str(run["id"])

    def _plan_for(self, config: dict[str, Any]) -> RunPlan:
        for plan in self.plans:
            if plan.shares(config):
                return plan
        plan = RunPlan.build(config, self.ws)
        self.plans.append(plan)
        if not self.max_concurrent:
            self.max_concurrent = self._concurrency(plan)
            self.gate = Slots(self.max_concurrent)
        if self.settings.get("prewarm", True):
            self._prewarm(plan, config)
        return plan

    def _concurrency(self, plan: RunPlan) -> int:
        """``sweep.max_concurrent_runs`` when set, else what the compute target holds at once (an SSH
        pool's slots, a Ray cluster's capacity for the per-run resources), else the CPU count."""
        if self.settings.get("max_concurrent_runs"):
            return int(self.settings["max_concurrent_runs"])
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
        from mltrain.remote.forkserver import script_imports

        built = plan.prepare(lambda line: print(f"[build] {line}", flush=True))
        modules = self.settings.get("prewarm_modules")
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
        )
        plan.compute.prewarm(built, spec, list(modules), self.max_concurrent)

    # -- running trials ---------------------------------------------------------------------------
    def run(self, source: TrialSource) -> list[TrialOutcome]:
        """Run the trials ``source`` gives (see the module docstring); their outcomes."""
        assert self.progress is not None
        running: dict[Future[RunResult | None], tuple[TrialOutcome, Trial, dict[str, int]]] = {}
        curves: dict[str, list[float]] = {}
        cancels: dict[int, str] = {}  # worker thread -> reason, re-applied until its trial ends
        exhausted = False
        next_heartbeat = 0.0
        deadline = self.settings.get("max_duration_s")
        outcomes: list[TrialOutcome] = []
        # a source that learns from outcomes (Optuna) is asked only when a slot frees. Others are composed
        # ahead: one trial, or up to AHEAD_MAX while no child has ended yet (the target still starting)
        lookahead = getattr(source, "report", None) is None
        ahead: deque[tuple[TrialOutcome, Trial]] = deque()
        ended = False
        # a trial waiting for a slot (``gate``) already runs in its thread, so it starts the moment one
        # frees (not for a source that learns from outcomes: it is asked when a slot frees)
        launched = self.max_concurrent * (1 + (QUEUED_PER_SLOT if lookahead else 0))
        pool = ThreadPoolExecutor(launched, thread_name_prefix="mltrain-trial")
        with pool, self.control.signals():
            while True:
                if self.control.reason and not self.stop_reason:
                    self.stop_reason = self.control.reason
                if deadline and time.time() - self.started > float(deadline) and not self.stop_reason:
                    self.stop(f"canceled: the sweep ran longer than sweep.max_duration_s={deadline}")
                now = time.monotonic()  # a child just ended: a cancel may be why, check before the next
                if now >= next_heartbeat:
                    next_heartbeat = now + HEARTBEAT_S
                    if self.ws.runs.heartbeat(self.sweep_id) and not self.stop_reason:
                        self.stop("canceled with `mltrain runs cancel`")
                while not self._stopping() and len(running) < launched and (ahead or not exhausted):
                    if ahead:
                        prepared: tuple[TrialOutcome, Trial] | None = ahead.popleft()
                    else:
                        request = self._next_request(source, outcomes)
                        if request is None:
                            exhausted = True
                            break
                        prepared = self._prepare(request)
                    if prepared is None:  # could not even be composed/recorded: counted as failed
                        source.done(self.outcomes[-1])
                        outcomes.append(self.outcomes[-1])
                        continue
                    future, entry = self._launch(pool, *prepared)
                    running[future] = entry
                room = 1 if ended else AHEAD_MAX
                more = lookahead and running and not exhausted and not self.stop_reason and len(ahead) < room
                if more:  # every slot is busy: compose the next trial now, so it starts as soon as one frees
                    request = self._next_request(source, outcomes, len(ahead))
                    if request is None:
                        exhausted = True
                    else:
                        prepared = self._prepare(request)
                        if prepared is None:
                            source.done(self.outcomes[-1])
                            outcomes.append(self.outcomes[-1])
                        else:
                            ahead.append(prepared)
                if not running and ((exhausted and not ahead) or self.stop_reason):
                    break
                # while composing ahead, only a look at which children ended
                waited = 0.0 if more and not ended else POLL_S
                done, _ = wait(list(running), timeout=waited, return_when=FIRST_COMPLETED)
                ended = ended or bool(done)
                for future in done:
                    outcome, trial, thread = running.pop(future)
                    cancels.pop(thread.get("id", -1), None)
                    if not self._finished(outcome, trial, future, curves):
                        continue  # still queued when the sweep stopped
                    outcomes.append(outcome)
                    source.done(outcome)
                    if outcome.status == FAILED and self.settings.get("fail_fast") and not self.stop_reason:
                        self.stop(f"canceled: child #{outcome.number} failed and sweep.fail_fast is set")
                if done:
                    next_heartbeat = 0.0
                self._follow(running, curves, cancels, getattr(source, "report", None))
                if self.stop_reason:
                    for _, _, thread in running.values():
                        if "id" in thread:
                            cancels.setdefault(thread["id"], self.stop_reason)
                for thread_id, reason in cancels.items():
                    self.control.cancel_thread(thread_id, reason)
        return outcomes

    def stop(self, reason: str) -> None:
        """Start no more children and cancel the running ones with ``reason``."""
        self.stop_reason = reason
        if self.progress is not None:
            self.progress.note(reason)

    def _counted(self) -> int:
        return sum(1 for o in self.outcomes if not o.kept) + len(self.kept)

    def _next_request(self, source: TrialSource, outcomes: list[TrialOutcome], ahead: int = 0) -> TrialRequest | None:
        """The next trial to run, None when the source or ``max_total_runs`` is exhausted (counting
        ``ahead`` trials composed but not started); a request a resumed sweep already completed is
        passed on as its kept outcome."""
        assert self.progress is not None
        while True:
            if self.max_total is not None and self._counted() + ahead >= int(self.max_total):
                return None
            request = source.next_request()
            if request is None:
                return None
            kept = self.kept.get(label_key(request.label))
            if kept is None:
                return request
            kept.request.token = request.token
            outcomes.append(kept)
            self.outcomes.append(kept)
            self.progress.kept(kept)
            source.done(kept)

    def _prepare(self, request: TrialRequest) -> tuple[TrialOutcome, Trial] | None:
        """The trial of ``request``, composed and planned (nothing recorded yet); None when it cannot
        be (then a failed outcome is the last of ``self.outcomes``). A first trial that cannot is
        the sweep's own error, raised."""
        assert self.progress is not None
        number = self.next_number
        self.next_number += 1
        outcome = TrialOutcome(request, number, None, QUEUED)
        try:
            config, overrides = self.compose(request.overrides, number)
            config = dict(config)
            outcome.config, outcome.overrides = config, overrides
            trial = Trial(
                self._plan_for(config),
                config,
                overrides,
                parent_run_id=self.sweep_id,
                echo=False,
                control=self.control,
                defer_models=self.settings["register"] != "all",
            )
        except MltrainError as exc:
            if not self.outcomes:  # the first trial cannot be composed or planned: the sweep is wrong
                raise
            outcome.status, outcome.error = FAILED, f"{exc}"
            self.outcomes.append(outcome)
            self.progress.finished(outcome)
            return None
        outcome.run_id = trial.run_id
        return outcome, trial

    def _launch(
        self, pool: ThreadPoolExecutor, outcome: TrialOutcome, trial: Trial
    ) -> tuple[Future[RunResult | None], tuple[TrialOutcome, Trial, dict[str, int]]]:
        """Run a prepared trial in a worker thread, once it has a slot (``gate``: at most
        ``max_concurrent`` jobs run; the next waits for one to end). None: never started."""
        assert self.progress is not None and outcome.run_id is not None
        request, number = outcome.request, outcome.number
        self.trials[trial.run_id] = trial
        self.outcomes.append(outcome)
        self.progress.add(outcome)
        thread: dict[str, int] = {}
        assert self.gate is not None
        ticket = self.gate.ticket()

        def work() -> RunResult | None:
            thread["id"] = threading.get_ident()
            assert self.gate is not None
            waited = self.gate.take(ticket, self._stopping)
            if waited is None:
                return None  # never started, never recorded
            given: list[bool] = []

            def ended(result: RunResult | None) -> None:  # the slot goes back exactly once
                if not given:
                    given.append(True)
                    self._job_ended(result)

            try:
                # a slot freed while this trial waited: maybe because the sweep is canceled (`mltrain runs cancel`)
                if waited and (self._stopping() or self.ws.runs.get(self.sweep_id)["cancel_requested"]):
                    return None
                result = trial.run(job_ended=ended)
            finally:
                ended(None)
            self.ws.runs.set_tags(
                trial.run_id,
                {
                    SWEEP_TAG: self.sweep_id,
                    TRIAL_TAG: str(number),
                    KEY_TAG: json.dumps(request.label),
                    PARAMS_TAG: json.dumps(request.params, default=str),
                },
            )
            return result

        return pool.submit(work), (outcome, trial, thread)

    def _job_ended(self, result: RunResult | None) -> None:
        """A child's job ended (None: it never started, or its thread failed): its slot goes to the
        next, which does not start when the child failed and ``sweep.fail_fast`` is set."""
        failed = result is None and not self._stopping() or result is not None and result.status == FAILED
        if failed and self.settings.get("fail_fast"):
            self.failed_fast = True
        assert self.gate is not None
        self.gate.give()

    def _stopping(self) -> bool:
        return bool(self.stop_reason or self.control.reason or self.failed_fast)

    def _finished(
        self, outcome: TrialOutcome, trial: Trial, future: Future[RunResult | None], curves: dict[str, list[float]]
    ) -> bool:
        """Record a launched trial's outcome; False when it never started (it is then forgotten)."""
        assert self.progress is not None
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - a trial that crashed the driver thread is a failed child
            outcome.status, outcome.error = FAILED, f"{type(exc).__name__}: {exc}"
            self.ws.runs.set_status(trial.run_id, FAILED, detail=outcome.error, error=outcome.error)
        else:
            if result is None:
                self.outcomes.remove(outcome)
                self.trials.pop(trial.run_id, None)
                self.progress.drop(outcome)
                return False
            outcome.result = result
            outcome.status, outcome.error = result.status, result.error
            if self.metric:
                outcome.value = _number(result.metrics.get(self.metric))
        if self.metric and outcome.run_id:
            curves[outcome.run_id] = self._curve(outcome.run_id)
            outcome.curve = curves[outcome.run_id]
        self.progress.finished(outcome)
        return True

    def _curve(self, run_id: str) -> list[float]:
        values = (_number(r["value"]) for r in self.ws.metrics.history(run_id, self.metric))
        return [v for v in values if v is not None]

    def _follow(
        self,
        running: dict[Future[RunResult | None], tuple[TrialOutcome, Trial, dict[str, int]]],
        curves: dict[str, list[float]],
        cancels: dict[int, str],
        report: Callable[[TrialOutcome, list[float]], None] | None,
    ) -> None:
        """Live state of the running children: progress lines, intermediate values for the source,
        early termination."""
        assert self.progress is not None
        if not running:
            return
        states = self.ws.runs.statuses(o.run_id for o, _, _ in running.values() if o.run_id)
        threads: dict[str, int] = {}
        for outcome, _, thread in running.values():
            assert outcome.run_id is not None
            outcome.status = states.get(outcome.run_id, outcome.status)
            if self.metric:
                curves[outcome.run_id] = self._curve(outcome.run_id)
                outcome.value = curves[outcome.run_id][-1] if curves[outcome.run_id] else None
                if report is not None:
                    report(outcome, curves[outcome.run_id])
            if "id" in thread:
                threads[outcome.run_id] = thread["id"]
            self.progress.update(outcome)
        if self.policy is not None:
            live = {rid for rid in threads if states.get(rid) == RUNNING}
            for run_id in self.policy.to_stop(curves, live):
                cancels.setdefault(threads[run_id], EARLY_TERMINATION)
        self.progress.render()

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
        if (
            self.stop_reason
            and not self.stop_reason.endswith("fail_fast is set")
            and "max_duration" not in (self.stop_reason)
        ):
            status = CANCELED
        elif failed:
            status = FAILED
        else:
            status = COMPLETED
        models, problems = [], []
        if best is not None and self.settings["register"] == "best" and status != CANCELED:
            models, problems = self._register_best(best)
        summary = f"{len(done)} completed, {len(failed)} failed, {len(canceled)} canceled, {len(stopped)} stopped early"
        records = [
            {"k": "children_completed", "v": len(done), "t": time.time()},
            {"k": "children_failed", "v": len(failed), "t": time.time()},
            {"k": "children_canceled", "v": len(canceled), "t": time.time()},
            {"k": "children_early_terminated", "v": len(stopped), "t": time.time()},
        ]
        tags: dict[str, str] = {}
        if best is not None and best.run_id:
            records.append({"k": f"best_{self.metric}", "v": best.value, "t": time.time()})
            tags["mltrain.sweep.best_run"] = best.run_id
        self.ws.metrics.add(self.sweep_id, records)
        self.ws.runs.set_tags(self.sweep_id, tags)
        error = self.stop_reason if status == CANCELED else (f"{len(failed)} children failed" if failed else None)
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
        return self.open()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is not None and self.sweep_id:
            self.ws.runs.set_status(self.sweep_id, FAILED, detail="sweep error", error=str(exc))
        for plan in self.plans:
            plan.close()
        if self.progress is not None:
            self.progress.close()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def run_sweep(
    base_config: dict[str, Any],
    overrides: list[str],
    compose: Compose,
    source: TrialSource,
    progress: ProgressFactory,
    echo: bool = True,
) -> tuple[int, list[TrialOutcome]]:
    """Run a whole sweep, shown by ``progress``; (exit code, outcomes in the order they ended). Errors
    in the config are reported and give exit code 2 (nothing is recorded)."""
    try:
        with Sweep(base_config, overrides, compose, progress, echo=echo) as sweep:
            outcomes = sweep.run(source)
            return sweep.finish(), outcomes
    except MltrainError as exc:
        print_error(exc)
        return exc.exit_code, []
