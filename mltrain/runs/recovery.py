"""Recovery of orphaned runs: a run whose driver died (killed, machine rebooted) is marked Failed
("driver lost") by the next mltrain command, with everything its folder holds stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltrain.procs import hostname, is_alive, owns_group, stop_group
from mltrain.workspace.runs import FAILED

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

DRIVER_LOST = "driver lost: the mltrain process that ran this run ended without finishing it"


def recover_orphans(ws: Workspace) -> list[str]:
    """Mark every orphaned run Failed; stop its leftover job on this host; return their ids."""
    from mltrain.runs.salvage import salvage_orphan

    here = hostname()
    recovered = []
    for rec in ws.runs.orphans(here, is_alive):
        if not ws.runs.set_status(rec["id"], FAILED, detail="driver lost", error=DRIVER_LOST):
            continue  # finished or recovered by another process meanwhile
        recovered.append(rec["id"])
        if rec["driver_host"] == here and owns_group(rec["child_pid"], rec["child_start"]):
            stop_group(rec["child_pid"], grace_s=2.0)
        salvage_orphan(ws, rec, here)
    return recovered
