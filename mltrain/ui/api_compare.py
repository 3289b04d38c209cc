"""API of comparisons: runs side by side, and a sweep's runs with their arguments and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.params import RUN_ID, ApiError, integer, json_response, run_of, text, ws_of
from mltrain.views.runs import arguments_of

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


def _swept(children: list[dict[str, Any]], tags: dict[str, dict[str, str]]) -> list[str]:
    """The arguments a sweep varied: those its trials' sampled parameters name (``job.arguments.X``)
    and those whose values differ between trials; every argument when there is one trial."""
    import json

    from mltrain.runs.sweep.tags import PARAMS_TAG

    names: set[str] = set()
    for c in children:
        try:
            params = json.loads(tags.get(c["id"], {}).get(PARAMS_TAG) or "{}")
        except ValueError:
            params = {}
        if isinstance(params, dict):
            names |= {k.removeprefix("job.arguments.") for k in params if str(k).startswith("job.arguments.")}
    every = sorted({k for c in children for k in c["args"]})
    for name in every:
        if len({repr(c["args"].get(name)) for c in children}) > 1:
            names.add(name)
    return sorted(names) if names or len(children) > 1 else every


def sweep(request: Request) -> Response:
    """A sweep (a run with children): its trials best first by the primary metric (``value``, ``trial``
    number, arguments, latest metrics), the arguments it varied, the metric names (none that is also
    an argument's name), the primary metric, its goal and the best trial."""
    from mltrain.runs.sweep.progress import rank
    from mltrain.runs.sweep.tags import TRIAL_TAG
    from mltrain.workspace.run_pages import tags_of

    ws = ws_of(request)
    parent = run_of(request)
    children = ws.runs.list(parent_run_id=parent["id"], limit=MAX_CHILDREN)[::-1]  # oldest first
    if not children:
        raise ApiError(
            404, f"run {parent['id']} has no child runs (it is not a sweep)", hint="compare runs with /compare?runs=A,B"
        )
    items = _summaries(ws, children)
    tags = tags_of(ws.db, [parent["id"], *(c["id"] for c in items)])
    args = _swept(items, tags)
    metrics = sorted(
        {
            k
            for c in items
            for k, v in c["metrics"].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in args
        }
    )
    own = tags[parent["id"]]
    cfg = parent.get("config") if isinstance(parent.get("config"), dict) else {}
    declared = (cfg.get("sweep") or {}).get("primary_metric") if isinstance(cfg.get("sweep"), dict) else None
    declared = declared if isinstance(declared, dict) else {}
    primary = own.get("mltrain.sweep.primary_metric") or declared.get("name") or None
    goal = own.get("mltrain.sweep.goal") or declared.get("goal") or "maximize"
    for c in items:
        number = tags[c["id"]].get(TRIAL_TAG, "")
        c["trial"] = int(number) if number.isdigit() else None
        value = c["metrics"].get(primary) if primary else None
        c["value"] = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    items.sort(key=lambda c: (c["trial"] is None, c["trial"] or 0))  # stable: then oldest first
    ranked = rank(items, lambda c: c["value"], goal != "minimize") if primary else items
    best = ranked[0]["id"] if primary and ranked and ranked[0]["value"] is not None else None
    return json_response(
        {
            "parent": _summaries(ws, [parent])[0],
            "children": ranked,
            "arguments": args,
            "metrics": metrics,
            "primary_metric": primary,
            "goal": goal,
            "best": best,
        }
    )
