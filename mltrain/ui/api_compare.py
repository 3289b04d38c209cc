"""API of comparisons: runs side by side, and a sweep's runs with their arguments and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.arguments import arguments_of
from mltrain.ui.params import RUN_ID, ApiError, integer, json_response, run_of, text, ws_of

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

MAX_COMPARE = 20
MAX_CHILDREN = 2000
SERIES_BUDGET = 500_000  # points of all the series of one comparison together


def _summaries(ws: Workspace, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mltrain.workspace.run_pages import latest_scalars

    metrics = latest_scalars(ws.db, [r["id"] for r in runs])
    return [
        {
            "id": r["id"],
            "experiment": r["experiment"],
            "status": r["status"],
            "created_at": r["created_at"],
            "args": arguments_of(r),
            "metrics": metrics.get(r["id"], {}),
        }
        for r in runs
    ]


def _runs(request: Request) -> list[dict[str, Any]]:
    """The runs named by the ``runs`` parameter (1 to MAX_COMPARE ids or unique prefixes, comma-separated)."""
    raw = text(request, "runs", max_chars=MAX_COMPARE * 65) or ""
    ids = [i for i in raw.split(",") if i]
    if not 1 <= len(ids) <= MAX_COMPARE:
        raise ApiError(400, f"give 1 to {MAX_COMPARE} run ids in 'runs' (comma-separated), got {len(ids)}")
    for i in ids:
        if not RUN_ID.match(i):
            raise ApiError(400, f"{i[:80]!r} is not a run id")
    ws = ws_of(request)
    return [ws.runs.get(i) for i in ids]


def compare(request: Request) -> Response:
    """Runs side by side: arguments and latest metrics."""
    return json_response({"runs": _summaries(ws_of(request), _runs(request))})


def compare_series(request: Request) -> Response:
    """Every numeric metric of the runs, each in at most ``points`` points (a longer series is
    downsampled as by /api/runs/{run_id}/series): ``{"runs": {run id: {metric: {step, ts, value,
    last_id, downsampled}}}}``. The metric names come from the server, so names of any length work."""
    from mltrain.ui.api_runs import MAX_POINTS, POINTS

    ws = ws_of(request)
    runs = _runs(request)
    points = integer(request, "points", POINTS, 4, MAX_POINTS)
    keys = {r["id"]: [k["key"] for k in ws.metrics.keys(r["id"]) if k["numeric"]] for r in runs}
    points = min(points, max(4, SERIES_BUDGET // max(1, sum(len(k) for k in keys.values()))))
    out = {rid: {key: ws.metrics.downsampled(rid, key, points) for key in run_keys} for rid, run_keys in keys.items()}
    return json_response({"runs": out, "points": points})


def sweep(request: Request) -> Response:
    """A sweep (a run with children): its runs' arguments and latest metrics, argument and metric names."""
    ws = ws_of(request)
    parent = run_of(request)
    children = ws.runs.list(parent_run_id=parent["id"], limit=MAX_CHILDREN)
    if not children:
        raise ApiError(
            404, f"run {parent['id']} has no child runs (it is not a sweep)", hint="compare runs with /compare?runs=A,B"
        )
    items = _summaries(ws, children)
    args = sorted({k for c in items for k in c["args"]})
    metrics = sorted(
        {k for c in items for k, v in c["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    )
    primary = None
    cfg = parent.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("sweep"), dict):
        primary = cfg["sweep"].get("primary_metric")
    return json_response(
        {
            "parent": _summaries(ws, [parent])[0],
            "children": items,
            "arguments": args,
            "metrics": metrics,
            "primary_metric": primary,
        }
    )
