"""The data a run read and wrote, as ``runs show`` and ``models show`` print it (``--json``: the records of
:func:`mltrain.views.runs.run_data`, as the dashboard's API has them)."""

from __future__ import annotations

from typing import Any

from mltrain.cli.output import print_table


def print_run_data(data: dict[str, list[dict[str, Any]]], indent: str = "") -> None:
    """A run's inputs and outputs as tables (nothing when it had none)."""
    for kind in ("inputs", "outputs"):
        if data.get(kind):
            print(f"\n{indent}{kind.capitalize()}:")
            rows = [
                (
                    d["key"],
                    f"data:{d['name']}:{d['version']}" if d["name"] else d["uri"] or "-",
                    (d["digest"] or "")[:12],
                    d["mode"] or "-",
                )
                for d in data[kind]
            ]
            print_table(rows, ["NAME", "DATA", "DIGEST", "MODE"])
