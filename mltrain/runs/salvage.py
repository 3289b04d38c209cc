"""Storing what an orphaned run's folder holds, one run at a time, never stopping at a bad record.

Recovery (driver lost) calls :func:`salvage_orphan` for every orphan it has marked Failed: the run's
metrics, tags, outputs/, logs/ and uploads are stored; anything that goes wrong (a malformed metric
record, an unreadable file) is added to the run's error and logged, and the next orphan is handled.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.run_context import METRICS_FILE

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

log = logging.getLogger("mltrain")


def salvage_orphan(ws: Workspace, rec: dict[str, Any], here: str) -> str | None:
    """Store the files of orphaned run ``rec`` (a runs row) when its folder is on this host ``here``.

    Returns None when everything was stored, else the problem, which is also appended to the run's
    error. Never raises (an error of the database itself excepted), so one bad run cannot stop recovery.
    """
    from mltrain.runs.finalize import collect_artifacts
    from mltrain.runs.ingest import parse_records

    run_dir = Path(rec["run_dir"]) if rec.get("run_dir") else None
    if rec.get("driver_host") != here or run_dir is None or not run_dir.is_dir():
        return None
    problems = []
    try:
        metrics_file = run_dir / METRICS_FILE
        if metrics_file.is_symlink():  # planted by the job: never read a file outside the run folder
            problems.append(f"its metrics file {METRICS_FILE} is a symlink: not read")
        elif metrics_file.is_file():
            metrics, tags, _ = parse_records(metrics_file.read_bytes().split(b"\n"))
            ws.metrics.replace(rec["id"], metrics)
            ws.runs.set_tags(rec["id"], tags)
    except Exception as exc:  # a malformed record must not stop recovery
        problems.append(f"its metrics could not be stored ({type(exc).__name__}: {exc})")
    try:
        collect_artifacts(ws, rec["id"], run_dir)
    except Exception as exc:
        problems.append(f"its files could not be stored ({type(exc).__name__}: {exc})")
    if not problems:
        return None
    problem = "; ".join(problems)
    log.warning("recovering run %s: %s", rec["id"], problem)
    error = ws.runs.get(rec["id"]).get("error")
    ws.runs.update(rec["id"], error=f"{error}; {problem}" if error else problem)
    return problem
