"""Recovery of orphaned runs: a run whose driver died (killed, machine rebooted) is marked Failed
("driver lost") by the next mltrain command, with everything its folder holds stored."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mltrain.compute.base import METRICS_REL
from mltrain.procs import hostname, is_alive, owns_group, stop_group
from mltrain.workspace.runs import FAILED

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

DRIVER_LOST = "driver lost: the mltrain process that ran this run ended without finishing it"


def recover_orphans(ws: Workspace) -> list[str]:
    """Mark every orphaned run Failed; stop its leftover job on this host; return their ids."""
    from mltrain.runs.finalize import collect_artifacts
    from mltrain.runs.ingest import parse_records

    here = hostname()
    recovered = []
    for rec in ws.runs.orphans(here, is_alive):
        if not ws.runs.set_status(rec["id"], FAILED, detail="driver lost", error=DRIVER_LOST):
            continue  # finished or recovered by another process meanwhile
        recovered.append(rec["id"])
        if rec["driver_host"] == here and owns_group(rec["child_pid"], rec["child_start"]):
            stop_group(rec["child_pid"], grace_s=2.0)
        run_dir = Path(rec["run_dir"]) if rec["run_dir"] else None
        if rec["driver_host"] == here and run_dir is not None and run_dir.is_dir():
            metrics_file = run_dir / METRICS_REL
            if metrics_file.is_file():
                metrics, tags, _ = parse_records(metrics_file.read_bytes().split(b"\n"))
                ws.metrics.replace(rec["id"], metrics)
                ws.runs.set_tags(rec["id"], tags)
            collect_artifacts(ws, rec["id"], run_dir)
    return recovered
