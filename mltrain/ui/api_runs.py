"""API of runs: the paged list, one run, its metric series and log, cancel."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.params import RUN_ID, ApiError, flag, integer, json_body, json_response, number, run_of, text, ws_of
from mltrain.views.runs import arguments_of

PAGE_LIMIT = 500
LOG_CHUNK = 256 * 1024
MAX_LOG_OFFSET = 1 << 40  # 1 TiB: past any log, and a position every file system can seek to
MAX_SERIES_POINTS = 2_000_000
POINTS = 4000  # points of one series answered by default: about a chart's width in pixels, times 4
MAX_POINTS = 20_000
MAX_KEY_CHARS = 4096  # a metric name in the URL (as long as the URL may be)


# -- the runs list ----------------------------------------------------------------------------------
def _metric_filter(raw: str) -> Any:
    from mltrain.workspace.run_pages import OPERATORS, MetricFilter

    for op in OPERATORS:
        key, sep, value = raw.partition(op)
        if sep and key.strip():
            return MetricFilter(key.strip(), op, number(value.strip(), f"the value of metric filter {raw!r}"))
    raise ApiError(
        400,
        f"metric filter {raw[:80]!r} is not KEY OP NUMBER",
        hint="e.g. accuracy>=0.9 (ops: " + " ".join(OPERATORS) + ")",
    )


def run_query(request: Request) -> Any:
    from mltrain.workspace.run_pages import SORT_COLUMNS, SORT_PREFIXES, RunQuery
    from mltrain.workspace.runs import STATUSES

    status = text(request, "status")
    if status and status.lower() not in {s.lower() for s in STATUSES}:
        raise ApiError(400, f"unknown status {status[:40]!r}", hint="one of " + ", ".join(STATUSES))
    tag = None
    raw_tag = text(request, "tag")
    if raw_tag:
        key, sep, value = raw_tag.partition("=")
        tag = (key, value if sep else None)
    metric = _metric_filter(raw) if (raw := text(request, "metric")) else None
    sort = text(request, "sort", "-created_at", max_chars=MAX_KEY_CHARS) or "-created_at"
    descending = sort.startswith("-")
    sort = sort.removeprefix("-")
    named = sort.startswith(SORT_PREFIXES) and len(sort.partition(":")[2]) > 0
    if sort not in SORT_COLUMNS and not named:
        raise ApiError(
            400,
            f"cannot sort by {sort[:60]!r}",
            hint="sort by " + ", ".join(SORT_COLUMNS) + ", metric:KEY, arg:NAME or tag:KEY (prefix - for descending)",
        )
    if sort.startswith("arg:") and '"' in sort:
        raise ApiError(400, f"cannot sort by argument {sort[4:64]!r}: its name holds a '\"'")
    parent = text(request, "parent")
    if parent and not RUN_ID.match(parent):
        raise ApiError(400, f"{parent[:80]!r} is not a run id")
    return RunQuery(
        experiment=text(request, "experiment"),
        status=status,
        tag=tag,
        metric=metric,
        parent=parent,
        flat=flag(request, "flat"),
        sort=sort,
        descending=descending,
        offset=integer(request, "offset", 0, 0, 10_000_000),
        limit=integer(request, "limit", 50, 1, PAGE_LIMIT),
    )


def list_runs(request: Request) -> Response:
    """A page of runs, filtered and sorted on the server, each with its arguments, latest metrics,
    tags and child count."""
    from mltrain.workspace.run_pages import latest_scalars, tags_of

    ws = ws_of(request)
    query = run_query(request)
    rows, total = ws.runs.page(query)
    ids = [r["id"] for r in rows]
    metrics = latest_scalars(ws.db, ids)
    tags = tags_of(ws.db, ids)
    for r in rows:
        r["args"] = arguments_of(r)
        del r["config"], r["arguments"]
        r["metrics"] = metrics.get(r["id"], {})
        r["tags"] = tags.get(r["id"], {})
    return json_response({"runs": rows, "total": total, "offset": query.offset, "limit": query.limit})


def experiments(request: Request) -> Response:
    """Every experiment with its run count and latest run time."""
    return json_response(ws_of(request).runs.experiments())


COLUMN_RUNS = 1000  # runs whose metric and tag names are offered as columns
ARGUMENT_RUNS = 200  # runs whose argument names are


def columns(request: Request) -> Response:
    """What the runs table can show and sort by: the metric, argument and tag names of the newest
    runs, each with how many of them have it, most common first."""
    from mltrain.workspace.run_pages import column_keys

    keys = column_keys(ws_of(request).db, COLUMN_RUNS, ARGUMENT_RUNS)
    counts: dict[str, int] = {}
    for run in keys["runs"]:
        for name in arguments_of(run):
            counts[name] = counts.get(name, 0) + 1
    arguments = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return json_response(
        {
            kind: [{"name": name, "runs": n} for name, n in found]
            for kind, found in (("metrics", keys["metrics"]), ("arguments", arguments), ("tags", keys["tags"]))
        }
    )


# -- one run -----------------------------------------------------------------------------------------
def get_run(request: Request) -> Response:
    """One run, as ``mltrain runs show --json`` gives it (:func:`mltrain.views.runs.run_detail`): record
    (flat, and nested as ``run``), arguments, status history, tags, metrics, logged tables, artifacts,
    registered models, snapshot, sweep children, and the data it read and wrote (``inputs``, ``outputs``)."""
    from mltrain.views.runs import run_detail

    return json_response(run_detail(ws_of(request), run_of(request).id))


def series(request: Request) -> Response:
    """The numeric series of one metric (``key``), or of every metric of the run (no ``key``; only
    the columns in ``fields``), as columns; only points stored after record ``after`` when given. One
    metric is answered in at most ``points`` points: a longer series is cut into ``points / 4`` runs of
    consecutive points, each answered by its first, last, lowest and highest point (``downsampled``)."""
    ws = ws_of(request)
    run = run_of(request)
    key = text(request, "key", max_chars=MAX_KEY_CHARS)
    after = integer(request, "after", 0, 0, 2**62)
    if key is None:
        if after:
            return json_response(ws.metrics.numeric_series(run.id, after, MAX_SERIES_POINTS))
        fields = tuple((text(request, "fields") or "step,ts,value").split(","))
        if not fields or not set(fields) <= {"step", "ts", "value"} or len(set(fields)) != len(fields):
            raise ApiError(400, f"'fields' must name some of step, ts, value, got {','.join(fields)[:60]!r}")
        return json_response(ws.metrics.all_series(run.id, MAX_SERIES_POINTS, fields))
    points = integer(request, "points", POINTS, 4, MAX_POINTS)
    return json_response({"key": key, **ws.metrics.downsampled(run.id, key, points, after_id=after)})


def log(request: Request) -> Response:
    """The run's output log (or build log) from byte ``offset``: ``{offset, next_offset, text}``."""
    from mltrain.runs.output import BUILD_LOG, STD_LOG
    from mltrain.workspace.run_files import read_run_file

    ws = ws_of(request)
    run = run_of(request)
    offset = integer(request, "offset", 0, 0, MAX_LOG_OFFSET)
    limit = integer(request, "limit", LOG_CHUNK, 1, 4 * LOG_CHUNK)
    rel = BUILD_LOG if flag(request, "build") else STD_LOG
    data = read_run_file(ws, run, rel, offset, limit)
    return json_response({"offset": offset, "next_offset": offset + len(data), "text": data.decode("utf-8", "replace")})


# -- writes ------------------------------------------------------------------------------------------
async def cancel(request: Request) -> Response:
    """Request the cancel of an active run and its children (needs --allow-write and the token)."""
    from starlette.concurrency import run_in_threadpool

    from mltrain.runs.cancel import cancel_run
    from mltrain.workspace.runs import TERMINAL

    await json_body(request)
    run = await run_in_threadpool(run_of, request)
    if run.status in TERMINAL:
        raise ApiError(409, f"run {run.id} already ended: {run.status}")
    # its driver acts on the flag; a run whose driver is gone is stopped through its compute target
    rec = await run_in_threadpool(cancel_run, ws_of(request), run.id, 0.0)
    return json_response({"id": rec.id, "status": rec.status, "cancel_requested": bool(rec.cancel_requested)})
