"""``mltrain runs cancel``: a run (and its active children) canceled from any process.

A run whose driver is alive is flagged; its driver sees the flag at its next heartbeat and cancels
the job with the reason "canceled with `mltrain runs cancel`". A run whose driver is gone is
canceled here, through the compute target that started its job (from the stored job reference).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mltrain.remote.procs import hostname, is_alive
from mltrain.runs.recovery import stop_job
from mltrain.runs.salvage import salvage_orphan
from mltrain.runs.trial import CANCELED_BY_COMMAND
from mltrain.workspace.runs import CANCELED, TERMINAL

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


def cancel_run(ws: Workspace, run_id: str, wait_s: float = 30.0) -> dict[str, Any]:
    """Cancel ``run_id`` and its active children; wait up to ``wait_s`` for it to end; its record."""
    run = ws.runs.request_cancel(run_id)
    if run["status"] in TERMINAL:
        return run
    orphans = {r["id"]: r for r in ws.runs.orphans(hostname(), is_alive)}
    family = [run["id"]] + [r["id"] for r in ws.runs.list(parent_run_id=run["id"], limit=None)]
    reason = f"{CANCELED_BY_COMMAND} (its driver was gone)"
    for rid in family:
        orphan = orphans.get(rid)
        if orphan is not None and ws.runs.set_status(rid, CANCELED, detail=reason, error=reason):
            problems = stop_job(ws, orphan, reason)
            if problems:
                ws.runs.add_problems(rid, problems)
            salvage_orphan(ws, orphan, hostname())
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        run = ws.runs.get(run["id"])
        if run["status"] in TERMINAL:
            break
        time.sleep(0.2)
    return run
