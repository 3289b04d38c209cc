"""Live progress of a sweep and its final table.

On a terminal, one line per child (number, overrides, state, latest primary metric) is redrawn in
place; otherwise a plain line is printed whenever a child changes state. A failed child is reported
at once with its error. Everything is also appended to the parent run's ``logs/std_log.txt``. What a
child stored (its error, metric values) is shown with control characters escaped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mltrain.runs.output import STD_LOG
from mltrain.runs.summary import format_value
from mltrain.text import LINES, escape_controls
from mltrain.workspace.runs import FAILED, FINALIZING, PREPARING, QUEUED

QUIET = (QUEUED, PREPARING, FINALIZING)  # states not worth a line of their own (shown live on a terminal)

if TYPE_CHECKING:
    from mltrain.runs.sweep.trials import TrialOutcome


def describe(outcome: TrialOutcome) -> str:
    return " ".join(outcome.request.label) or "(no overrides)"


def state_of(outcome: TrialOutcome) -> str:
    if outcome.kept:
        return "Completed (kept)"
    if outcome.early_terminated:
        return "Canceled (early termination)"
    return outcome.status


class Progress:
    def __init__(self, run_dir: Path, metric: str | None, echo: bool = True, out: TextIO | None = None) -> None:
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._log = open(run_dir / STD_LOG, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.metric = metric
        self.echo = echo
        self.out = out or sys.stdout
        self.live = echo and self.out.isatty()
        self.rows: dict[int, TrialOutcome] = {}
        self.shown: dict[int, str] = {}
        self._drawn = 0

    def _emit(self, line: str, log: bool = True) -> None:
        if log:
            self._log.write(line + "\n")
            self._log.flush()
        if self.echo:
            if self.live:
                self._clear()
            print(escape_controls(line, LINES), file=self.out, flush=True)
            if self.live:
                self._draw()

    def note(self, line: str) -> None:
        self._emit(f"[sweep] {line}")

    def _row(self, o: TrialOutcome) -> str:
        value = "" if o.value is None else f"  {self.metric}={format_value(o.value)}"
        return f"  #{o.number:<3} {state_of(o):<28} {describe(o)}{value}"

    def add(self, outcome: TrialOutcome) -> None:
        self.rows[outcome.number] = outcome
        self.update(outcome)

    def drop(self, outcome: TrialOutcome) -> None:
        """A launched trial that never started (the sweep stopped while it waited for a slot)."""
        self.rows.pop(outcome.number, None)
        self.shown.pop(outcome.number, None)

    def kept(self, outcome: TrialOutcome) -> None:
        self.add(outcome)

    def update(self, outcome: TrialOutcome) -> None:
        state = state_of(outcome)
        if self.shown.get(outcome.number) == state or state in QUIET:
            return
        self.shown[outcome.number] = state
        line = f"[sweep] #{outcome.number} {describe(outcome)}: {state}"
        if outcome.run_id:
            line += f" ({outcome.run_id})"
        if outcome.value is not None and state != "Running":
            line += f" {self.metric}={format_value(outcome.value)}"
        self._log.write(line + "\n")
        self._log.flush()
        if self.echo and not self.live:
            print(escape_controls(line, LINES), file=self.out, flush=True)

    def finished(self, outcome: TrialOutcome) -> None:
        self.rows[outcome.number] = outcome
        self.update(outcome)
        if outcome.status == FAILED:
            error = (outcome.error or "").replace("\n", "\n    ")
            self._emit(f"[sweep] child #{outcome.number} ({describe(outcome)}) failed: {error}")
        self.render()

    # -- in-place lines on a terminal ---------------------------------------------------------------
    def _clear(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        lines = [escape_controls(self._row(o)) for o in sorted(self.rows.values(), key=lambda o: o.number)]
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
        self._drawn = len(lines)

    def render(self) -> None:
        if self.live:
            self._clear()
            self._draw()

    # -- the end ----------------------------------------------------------------------------------
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
    ) -> None:
        if self.live:
            self._clear()
            self.live = False
        lines = ["", f"Sweep {sweep_id}: {status} ({counts})"]
        lines += table(outcomes, self.metric, maximize)
        if best is not None:
            lines.append(f"  best:    #{best.number} {best.run_id} {self.metric}={format_value(best.value)}")
            for mv in models:
                lines.append(f"  model:   {mv.name} version {mv.version}")
        elif self.metric is None:
            lines.append("  best:    - (no sweep.primary_metric.name: children are not ranked)")
        for problem in problems:
            lines.append(f"  problem: {problem}")
        lines.append(f"  details: mltrain runs show {sweep_id}")
        for line in lines:
            self._emit(line)

    def close(self) -> None:
        self._log.close()


def rank(rows: list[Any], value: Any, maximize: bool) -> list[Any]:
    """``rows`` sorted best first by ``value(row)``; rows without a value last."""
    scored = [r for r in rows if value(r) is not None]
    rest = [r for r in rows if value(r) is None]
    return sorted(scored, key=value, reverse=maximize) + rest


def table(outcomes: list[TrialOutcome], metric: str | None, maximize: bool) -> list[str]:
    """The children as aligned rows, sorted by the primary metric (best first)."""
    rows = [
        (f"#{o.number}", o.run_id or "-", state_of(o), "-" if o.value is None else format_value(o.value), describe(o))
        for o in rank(outcomes, lambda o: o.value, maximize)
    ]
    headers = ("TRIAL", "RUN ID", "STATUS", (metric or "METRIC").upper(), "OVERRIDES")
    cells = [headers, *rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(headers))]
    return ["  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
