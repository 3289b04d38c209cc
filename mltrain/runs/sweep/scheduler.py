"""Which trial of a sweep starts when.

The scheduler asks the source for trials while fewer than ``sweep.max_concurrent_runs`` run, has the
sweep compose and plan each (``Sweep.prepare``, in the calling thread), and runs it in a worker
thread that waits for a slot (:class:`Slots`): one more trial per slot is launched, unrecorded, and
starts the moment a child's job ended, in the sweep's order. Grid and random trials are composed
ahead while every slot is busy (up to :data:`AHEAD_MAX` while no child has ended yet, the compute
target still starting); a source that learns from outcomes (Optuna) is asked only when a slot frees.
Between two looks at which children ended, the :class:`~mltrain.runs.sweep.monitor.Monitor` follows
the running ones; each outcome is told to the source as its child ends.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from mltrain.runs.result import RunResult
from mltrain.runs.sweep.monitor import Launched, Monitor
from mltrain.runs.sweep.session import Prepared, Sweep
from mltrain.runs.sweep.tags import KEY_TAG, PARAMS_TAG, SWEEP_TAG, TRIAL_TAG
from mltrain.runs.sweep.trials import (
    Stop,
    StopCause,
    TrialSource,
    metric_value,
)
from mltrain.workspace.runs import FAILED

POLL_S = 0.3
QUEUED_PER_SLOT = 1  # trials launched ahead per slot: each waits for one and starts the moment it frees
GATE_POLL_S = 0.2
AHEAD_MAX = 256  # most trials composed ahead while the compute target starts


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


class Scheduler:
    """Runs the trials of ``source`` for ``sweep`` (see the module docstring)."""

    def __init__(self, sweep: Sweep, source: TrialSource) -> None:
        self.sweep = sweep
        self.source = source
        self.monitor = Monitor(sweep, source)
        self.gate = Slots(sweep.max_concurrent)  # held by each child while its job runs
        self.lookahead = getattr(source, "report", None) is None  # the source does not learn from outcomes
        self.width = sweep.max_concurrent * (1 + (QUEUED_PER_SLOT if self.lookahead else 0))
        self.running: dict[Future[RunResult | None], Launched] = {}
        self.ahead: deque[Prepared] = deque()
        self.exhausted = False
        self.ended = False  # a child has ended

    def run(self, first: Prepared | None) -> None:
        """Run ``first`` (the trial the sweep opened with) and every trial after it; their outcomes are
        the sweep's."""
        if first is not None:
            self.ahead.append(first)
        else:
            self.exhausted = True
        pool = ThreadPoolExecutor(self.width, thread_name_prefix="mltrain-trial")
        with pool, self.sweep.control.signals():
            while True:
                self.monitor.check()
                self._fill(pool)
                more = self._compose_ahead()
                if not self.running and ((self.exhausted and not self.ahead) or self.sweep.stopped):
                    break
                # while composing ahead, only a look at which children ended
                timeout = 0.0 if more and not self.ended else POLL_S
                done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
                self.ended = self.ended or bool(done)
                for future in done:
                    self._collect(future)
                self.monitor.follow(list(self.running.values()))

    def _fill(self, pool: ThreadPoolExecutor) -> None:
        """Launch trials while there is room."""
        while not self.sweep.stopping() and len(self.running) < self.width and (self.ahead or not self.exhausted):
            if self.ahead:
                prepared: Prepared | None = self.ahead.popleft()
            else:
                prepared = self._next()
                if prepared is None:
                    continue
            assert prepared is not None
            launched = Launched(prepared.outcome, prepared.trial)
            self.running[self._launch(pool, launched)] = launched

    def _compose_ahead(self) -> bool:
        """Compose the next trial while every slot is busy, so it starts as soon as one frees; whether
        the scheduler is composing ahead."""
        room = 1 if self.ended else AHEAD_MAX
        more = bool(
            self.lookahead and self.running and not self.exhausted and not self.sweep.stopped and len(self.ahead) < room
        )
        if more:
            prepared = self._next(len(self.ahead))
            if prepared is not None:
                self.ahead.append(prepared)
        return more

    def _next(self, ahead: int = 0) -> Prepared | None:
        """The next trial prepared; None when there is none (``exhausted`` is then set) or when it
        could not be composed or planned (a failed outcome, told to the source)."""
        request = self.sweep.next_request(self.source, ahead)
        if request is None:
            self.exhausted = True
            return None
        prepared = self.sweep.prepare(request)
        if prepared is None:
            self.source.done(self.sweep.outcomes[-1])
        return prepared

    def _launch(self, pool: ThreadPoolExecutor, launched: Launched) -> Future[RunResult | None]:
        """Run a prepared trial in a worker thread, once it has a slot (at most ``max_concurrent`` jobs
        run; the next waits for one to end). The future's result is None when it never started."""
        sweep, outcome, trial = self.sweep, launched.outcome, launched.trial
        assert sweep.progress is not None and outcome.run_id is not None
        sweep.trials[trial.run_id] = trial
        sweep.outcomes.append(outcome)
        sweep.progress.add(outcome)
        ticket = self.gate.ticket()

        def work() -> RunResult | None:
            launched.thread = threading.get_ident()
            waited = self.gate.take(ticket, sweep.stopping)
            if waited is None:
                return None  # never started, never recorded
            given: list[bool] = []

            def ended(result: RunResult | None) -> None:  # the slot goes back exactly once
                if not given:
                    given.append(True)
                    self._job_ended(result)

            try:
                # a slot freed while this trial waited: maybe because the sweep is canceled (`mltrain runs cancel`)
                if waited and (sweep.stopping() or sweep.ws.runs.get(sweep.sweep_id)["cancel_requested"]):
                    return None
                result = trial.run(job_ended=ended)
            finally:
                ended(None)
            sweep.ws.runs.set_tags(
                trial.run_id,
                {
                    SWEEP_TAG: sweep.sweep_id,
                    TRIAL_TAG: str(outcome.number),
                    KEY_TAG: json.dumps(outcome.request.label),
                    PARAMS_TAG: json.dumps(outcome.request.params, default=str),
                },
            )
            return result

        return pool.submit(work)

    def _job_ended(self, result: RunResult | None) -> None:
        """A child's job ended (None: it never started, or its thread failed): its slot goes to the
        next, which does not start when the child failed and ``sweep.fail_fast`` is set."""
        sweep = self.sweep
        failed = result is None and not sweep.stopping() or result is not None and result.status == FAILED
        if failed and sweep.settings.fail_fast:
            sweep.failed_fast = True
        self.gate.give()

    def _collect(self, future: Future[RunResult | None]) -> None:
        """Record the outcome of a trial whose thread ended and tell the source; a trial that never
        started is forgotten."""
        sweep = self.sweep
        assert sweep.progress is not None
        launched = self.running.pop(future)
        self.monitor.ended(launched)
        outcome, trial = launched.outcome, launched.trial
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - a trial that crashed the driver thread is a failed child
            outcome.status, outcome.error = FAILED, f"{type(exc).__name__}: {exc}"
            sweep.ws.runs.set_status(trial.run_id, FAILED, detail=outcome.error, error=outcome.error)
        else:
            if result is None:  # still waiting for its slot when the sweep stopped
                sweep.outcomes.remove(outcome)
                sweep.trials.pop(trial.run_id, None)
                sweep.progress.drop(outcome)
                return
            outcome.result = result
            outcome.status, outcome.error = result.status, result.error
            if sweep.metric:
                outcome.value = metric_value(result.metrics.get(sweep.metric))
        self.monitor.settle(outcome)
        sweep.progress.finished(outcome)
        self.source.done(outcome)
        if outcome.status == FAILED and sweep.settings.fail_fast and not sweep.stopped:
            reason = f"canceled: child #{outcome.number} failed and sweep.fail_fast is set"
            sweep.stop(Stop(StopCause.FAIL_FAST, reason))
