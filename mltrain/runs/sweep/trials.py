"""What the parts of a sweep hand each other: trial requests and outcomes, the source of trials, the
progress display, why a sweep stopped, and the tags that mark sweeps and children in the workspace."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mltrain.runs.result import EXIT_CODES, RunResult
from mltrain.runs.sweep.policies import EARLY_TERMINATION
from mltrain.workspace.runs import CANCELED

if TYPE_CHECKING:
    from mltrain.runs.sweep.settings import SweepConfig


# (overrides, trial number) -> (the trial's resolved task config, its task overrides)
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


class LearningSource(TrialSource, Protocol):
    """A source that learns from outcomes (Optuna): asked for a trial only when a slot is free."""

    def report(self, outcome: TrialOutcome, curve: list[float]) -> None:
        """The live primary-metric values of a running child."""


SourceFactory = Callable[["SweepConfig"], TrialSource]  # the trials of checked sweep settings


class SweepProgress(Protocol):
    """What a sweep shows while it runs (:class:`mltrain.runs.sweep.progress.Progress`)."""

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


ProgressFactory = Callable[[Path, "str | None", bool], SweepProgress]  # (sweep run folder, metric, echo)


class StopCause(Enum):
    """Why a sweep stopped starting children (and canceled the running ones)."""

    SIGNAL = "signal"  # Ctrl-C or SIGTERM
    CANCEL_COMMAND = "cancel command"  # `mltrain runs cancel SWEEP`
    FAIL_FAST = "fail fast"  # a child failed and sweep.fail_fast is set
    MAX_DURATION = "max duration"  # sweep.max_duration_s ran out

    @property
    def cancels_sweep(self) -> bool:
        """Whether the sweep itself ends Canceled (a time budget that ran out, or a failed child with
        fail_fast, end it Completed or Failed by its children)."""
        return self in (StopCause.SIGNAL, StopCause.CANCEL_COMMAND)


@dataclass(frozen=True)
class Stop:
    cause: StopCause
    reason: str  # shown, and the running children's cancel reason


@dataclass
class SweepSpec:
    """One sweep, as Hydra composed it: what an app's sweep entry point runs."""

    base: dict[str, Any]  # the sweep's own task config, resolved (recorded on the sweep run)
    settings: SweepConfig  # its ``sweep`` node, typed
    overrides: list[str]  # its command-line overrides (recorded on the sweep run)
    compose: Compose  # composes one trial's config
    source: SourceFactory  # the trials, from the checked settings
    progress: ProgressFactory  # what shows the sweep while it runs
    echo: bool = True


@dataclass
class SweepResult:
    exit_code: int
    outcomes: list[TrialOutcome] = field(default_factory=list)  # in the order they ended


def label_key(label: list[str]) -> str:
    return json.dumps(sorted(label))


def metric_value(value: Any) -> float | None:
    """A stored metric value as a number (None for anything else)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
