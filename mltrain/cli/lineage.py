"""The data a run read and wrote, as ``runs show`` and ``models show`` print it (and in ``--json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mltrain.cli.output import print_table

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


def run_data(ws: Workspace, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """``{"inputs": [...], "outputs": [...]}`` of run ``run_id``: name, data version (``data:NAME:V``, or
    None for a plain URI or path), URI, digest and delivery mode of each."""
    out: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    for link in ws.data.links(run_id=run_id):
        ref = f"data:{link.data_name}:{link.data_version}" if link.data_name else None
        entry = {"name": link.name, "data": ref, "uri": link.uri, "digest": link.digest, "mode": link.mode}
        out["inputs" if link.direction == "input" else "outputs"].append(entry)
    return out


def print_run_data(data: dict[str, list[dict[str, Any]]], indent: str = "") -> None:
    """The inputs and outputs of :func:`run_data` as tables (nothing when the run had none)."""
    for kind in ("inputs", "outputs"):
        if data[kind]:
            print(f"\n{indent}{kind.capitalize()}:")
            rows = [
                (d["name"], d["data"] or d["uri"] or "-", (d["digest"] or "")[:12], d["mode"] or "-")
                for d in data[kind]
            ]
            print_table(rows, ["NAME", "DATA", "DIGEST", "MODE"])
