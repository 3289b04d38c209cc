"""Output of the management command: aligned tables for people, JSON (``--json``) for scripts."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from mltrain.text import LINES, escape_controls, fmt_bytes  # noqa: F401 - fmt_bytes: the commands import it from here


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def fmt_duration(start: float | None, end: float | None) -> str:
    """From ``start`` to ``end`` (now while running); a run's duration is from its record
    (created_at) to its end, the same the run's summary shows."""
    from mltrain.runs.summary import format_seconds

    if not start:
        return "-"
    return format_seconds((end or time.time()) - start)


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], empty: str = "(none)") -> None:
    """Print ``rows`` under ``headers`` as aligned columns (control characters in a cell escaped)."""
    if not rows:
        print(empty)
        return
    cells = [[escape_controls(str(h)) for h in headers]]
    cells += [["-" if c is None else escape_controls(str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_kv(pairs: Sequence[tuple[str, Any]]) -> None:
    """Print ``key: value`` lines with aligned values (control characters escaped; the lines of a
    value with several are aligned too)."""
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        text = "-" if value is None else escape_controls(str(value), LINES).replace("\n", "\n" + " " * (width + 2))
        print(f"{key + ':':<{width + 1}} {text}")
