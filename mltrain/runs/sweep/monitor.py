"""What a sweep watches while its children run: why it should stop, and the children's live state.

``check()`` stops the sweep on a signal (Ctrl-C), on ``mltrain runs cancel SWEEP`` (seen through the
parent's heartbeat) or when ``sweep.max_duration_s`` ran out. ``follow(running)`` reads the running
children's states and primary-metric curves, shows them, reports the curves to a source that learns
from them (Optuna's intermediate values), stops children by the early-termination policy, and
cancels every running child of a stopped sweep; a cancel is sent again on every poll until its
child ends (a child still starting has no job to cancel yet).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from mltrain.runs.sweep.policies import EARLY_TERMINATION
from mltrain.runs.sweep.session import Prepared, Sweep
from mltrain.runs.sweep.trials import Stop, StopCause, TrialOutcome, TrialSource, metric_value
from mltrain.runs.trial import CANCELED_BY_COMMAND
from mltrain.workspace.runs import RUNNING

HEARTBEAT_S = 2.0


@dataclass
class Launched(Prepared):
    """A trial handed to a worker thread; ``thread`` is that thread's id once it runs."""

    thread: int | None = None


class Monitor:
    def __init__(self, sweep: Sweep, source: TrialSource) -> None:
        self.sweep = sweep
        self.report = getattr(source, "report", None)  # a source that learns from live values
        self.curves: dict[str, list[float]] = {}  # run id -> primary-metric values so far
        self.cancels: dict[int, str] = {}  # worker thread -> reason, sent until its trial ends
        self.deadline = sweep.settings.max_duration_s
        self._next_heartbeat = 0.0

    def check(self) -> None:
        """Stop the sweep when it was canceled or ran out of time; heartbeat the parent run."""
        sweep = self.sweep
        if sweep.control.reason and not sweep.stopped:
            sweep.stop(Stop(StopCause.SIGNAL, sweep.control.reason), note=False)
        if self.deadline and time.time() - sweep.started > float(self.deadline) and not sweep.stopped:
            reason = f"canceled: the sweep ran longer than sweep.max_duration_s={self.deadline}"
            sweep.stop(Stop(StopCause.MAX_DURATION, reason))
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_S
            if sweep.ws.runs.heartbeat(sweep.sweep_id) and not sweep.stopped:
                sweep.stop(Stop(StopCause.CANCEL_COMMAND, CANCELED_BY_COMMAND))

    def ended(self, launched: Launched) -> None:
        """A child's thread ended: no more cancels for it; the heartbeat comes next (a cancel may be why)."""
        if launched.thread is not None:
            self.cancels.pop(launched.thread, None)
        self._next_heartbeat = 0.0

    def settle(self, outcome: TrialOutcome) -> None:
        """The final curve of a child that ran."""
        if self.sweep.metric and outcome.run_id:
            self.curves[outcome.run_id] = outcome.curve = self.curve(outcome.run_id)

    def curve(self, run_id: str) -> list[float]:
        assert self.sweep.metric is not None
        values = (metric_value(r["value"]) for r in self.sweep.ws.metrics.history(run_id, self.sweep.metric))
        return [v for v in values if v is not None]

    def follow(self, running: Collection[Launched]) -> None:
        """Live state of the running children (see the module docstring)."""
        sweep = self.sweep
        assert sweep.progress is not None
        if running:
            self._follow(running)
        if sweep.stopped is not None:
            for launched in running:
                if launched.thread is not None:
                    self.cancels.setdefault(launched.thread, sweep.stopped.reason)
        for thread, reason in self.cancels.items():
            sweep.control.cancel_thread(thread, reason)

    def _follow(self, running: Collection[Launched]) -> None:
        sweep = self.sweep
        assert sweep.progress is not None
        states = sweep.ws.runs.statuses(launched.outcome.run_id for launched in running if launched.outcome.run_id)
        threads: dict[str, int] = {}
        for launched in running:
            outcome: TrialOutcome = launched.outcome
            assert outcome.run_id is not None
            outcome.status = states.get(outcome.run_id, outcome.status)
            if sweep.metric:
                curve = self.curves[outcome.run_id] = self.curve(outcome.run_id)
                outcome.value = curve[-1] if curve else None
                if self.report is not None:
                    self.report(outcome, curve)
            if launched.thread is not None:
                threads[outcome.run_id] = launched.thread
            sweep.progress.update(outcome)
        if sweep.policy is not None:
            live = {run_id for run_id in threads if states.get(run_id) == RUNNING}
            for run_id in sweep.policy.to_stop(self.curves, live):
                self.cancels.setdefault(threads[run_id], EARLY_TERMINATION)
        sweep.progress.render()
