"""API of environments: every built environment with its spec, lock, size and the runs that used it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.params import json_response, ws_of

RECENT_RUNS = 5  # runs listed per environment (the newest; ``runs.count`` says how many in all)


def list_environments(request: Request) -> Response:
    """Every environment record (spec, lock, size, last use) with ``runs``: how many runs used it and
    the newest of them. A venv recorded without a size is measured here (once per dashboard process,
    not stored: the dashboard does not write on reads)."""
    from pathlib import Path

    from mltrain.environments.records import list_environments as records
    from mltrain.environments.venv import READY_MARKER
    from mltrain.workspace.paths import folder_size
    from mltrain.workspace.run_pages import env_runs

    ws = ws_of(request)
    sizes: dict[str, int] = request.app.state.__dict__.setdefault("_env_sizes", {})
    out = records(ws)
    used = env_runs(ws.db, sorted({rec["hash"] for rec in out}), RECENT_RUNS)
    for rec in out:
        rec["runs"] = used[rec["hash"]]
        if rec["builder"] == "venv" and rec.get("location"):
            folder = Path(rec["location"])
            rec["present"] = (folder / READY_MARKER).exists()
            if rec["size_bytes"] is None and rec["present"]:
                if rec["hash"] not in sizes:
                    sizes[rec["hash"]] = folder_size(folder)[0]
                rec["size_bytes"] = sizes[rec["hash"]]
    return json_response(out)
