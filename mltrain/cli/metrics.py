"""Reading metrics back: ``runs metrics`` (every value), the series in ``runs show``, ``runs
compare``, and the ``--where``/``--tag`` filters of ``runs list``."""

from __future__ import annotations

import csv
import re
import sys
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import fmt_duration, print_json, print_table
from mltrain.errors import ConfigError
from mltrain.runs.summary import format_value
from mltrain.text import escape_controls

if TYPE_CHECKING:
    from mltrain.workspace import Workspace
    from mltrain.workspace.metrics import SeriesStats

SPARK = "▁▂▃▄▅▆▇█"
_WHERE = re.compile(r"^\s*([^<>=!]+?)\s*(>=|<=|!=|==|=|>|<)\s*(.*?)\s*$")


class FilterError(ConfigError):
    """A ``--where`` or ``--tag`` filter that cannot be read."""


def parse_where(expr: str) -> tuple[str, str, float | str]:
    """``"accuracy>0.9"`` → ("accuracy", ">", 0.9); a value that is not a number stays a string."""
    match = _WHERE.match(expr)
    if not match or not match.group(3):
        raise FilterError(
            f"cannot read the filter {expr!r}",
            hint='write NAME OP VALUE with OP one of > >= < <= = !=, e.g. "accuracy>0.9"',
        )
    name, op, raw = match.groups()
    try:
        value: float | str = float(raw)
    except ValueError:
        value = raw.strip("'\"")
        if op not in ("=", "==", "!="):
            raise FilterError(
                f"the filter {expr!r} compares {raw!r}, which is not a number, with {op}",
                hint="compare strings with = or != only",
            ) from None
    return name, op, value


def parse_tags(items: list[str]) -> dict[str, str]:
    """``["stage=baseline"]`` → {"stage": "baseline"}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FilterError(f"cannot read the tag filter {item!r}", hint="write --tag KEY=VALUE")
        out[key] = value
    return out


def sparkline(values: list[float]) -> str:
    """One block character per value, scaled between the smallest and the largest."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    return "".join(SPARK[0 if not span else min(len(SPARK) - 1, int((v - lo) / span * len(SPARK)))] for v in values)


def print_series(ws: Workspace, run_id: str, stats: list[SeriesStats]) -> None:
    """The run's scalar series (``stats``) logged more than once: count, last, min, max (and a
    sparkline on a terminal)."""
    series = [s for s in stats if s.count > 1]
    if not series:
        return
    tty = sys.stdout.isatty()
    rows = []
    for s in series:
        row = [s.key, s.count, format_value(s.last), _num(s.min), _num(s.max)]
        if tty:
            row.append(sparkline(ws.metrics.sampled(run_id, s.key)) if s.min is not None else "")
        rows.append(row)
    print("\nSeries (all values: mltrain runs metrics ID NAME):")
    print_table(rows, ["NAME", "COUNT", "LAST", "MIN", "MAX", *(["TREND"] if tty else [])])


def _num(value: Any) -> str:
    return "-" if value is None else format_value(float(value))


def print_history(ws: Workspace, run_id: str, names: list[str], fmt: str) -> int:
    """Every value of the run's metrics (or of ``names``), in logging order."""
    run = ws.runs.get(run_id)
    records = []
    for name in names or [None]:
        found = ws.metrics.history(run.id, name)
        if name is not None and not found:
            known = sorted(ws.metrics.summary(run.id))
            raise FilterError(
                f"run {run.id} has no metric {name!r}", hint=f"its metrics: {', '.join(known) or '(none)'}"
            )
        records += found
    if fmt == "json":
        print_json([{"name": r.key, "step": r.step, "value": r.value, "time": r.ts, "kind": r.kind} for r in records])
    elif fmt == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["name", "step", "value", "time"])
        for r in records:
            value = r.value if not isinstance(r.value, (dict, list)) else format_value(r.value)
            if isinstance(value, str):
                value = escape_controls(value)  # CSV may reach a terminal: --json keeps stored text exact
            out.writerow([escape_controls(r.key), "" if r.step is None else r.step, value, f"{r.ts:.6f}"])
    else:
        print_table(
            [(r.key, r.step, format_value(r.value), f"{r.ts:.3f}") for r in records],
            ["NAME", "STEP", "VALUE", "TIME"],
            "(no metrics)",
        )
    return 0


def _arguments(run: dict[str, Any]) -> dict[str, str]:
    """A run's script arguments by name (``--key value`` pairs of its command line)."""
    argv = [str(a) for a in run["arguments"] or []]
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("-") and len(token) > 1 and not _is_number(token):
            values = []
            while i + 1 < len(argv) and not (argv[i + 1].startswith("-") and not _is_number(argv[i + 1])):
                i += 1
                values.append(argv[i])
            out[token.lstrip("-")] = " ".join(values) if values else "true"
        else:
            out[f"arg{len(out)}"] = token
        i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def compare(ws: Workspace, run_ids: list[str], as_json: bool) -> int:
    """Arguments and final metrics of runs side by side."""
    runs = [ws.runs.get(r) for r in run_ids]
    arguments = [_arguments(r) for r in runs]
    metrics = [ws.metrics.summary(r["id"]) for r in runs]
    if as_json:
        print_json(
            [
                {"id": r["id"], "experiment": r["experiment"], "status": r["status"], "arguments": a, "metrics": m}
                for r, a, m in zip(runs, arguments, metrics, strict=True)
            ]
        )
        return 0
    arg_names = list(dict.fromkeys(k for a in arguments for k in a))
    metric_names = list(dict.fromkeys(k for m in metrics for k in m))
    rows: list[list[Any]] = [
        ["experiment", *(r["experiment"] for r in runs)],
        ["status", *(r["status"] for r in runs)],
        ["duration", *(fmt_duration(r["created_at"], r["ended_at"]) for r in runs)],
    ]
    rows += [[f"--{k}", *(a.get(k) for a in arguments)] for k in arg_names]
    rows += [[k, *(format_value(m[k]) if k in m else None for m in metrics)] for k in metric_names]
    differ = [len({str(v) for v in row[1:]}) > 1 for row in rows]
    print_table(
        [[("* " if d else "  ") + str(row[0]), *row[1:]] for row, d in zip(rows, differ, strict=True)],
        ["", *(r["id"] for r in runs)],
    )
    print("(* differs)")
    return 0
