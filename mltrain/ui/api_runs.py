"""API of runs: the paged list, one run, its metric series, log, artifacts, compare and sweeps, cancel."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from mltrain.ui.params import ApiError, flag, integer, json_body, json_response, number, text

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PAGE_LIMIT = 500
MAX_COMPARE = 20
MAX_CHILDREN = 2000
LOG_CHUNK = 256 * 1024
MAX_SERIES_POINTS = 2_000_000
PREVIEW_BYTES = 1 << 20
PREVIEW_ROWS = 200
TABLE_ROWS = 500
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
TEXT_SUFFIXES = {".txt", ".log", ".csv", ".tsv", ".json", ".jsonl", ".md", ".yaml", ".yml", ".py", ".toml", ".cfg"}
HIDDEN = ("driver_start", "child_start")


def ws_of(request: Request) -> Workspace:
    return request.app.state.ws  # type: ignore[no-any-return]


def run_of(request: Request) -> dict[str, Any]:
    """The run named by the path (full id or unique prefix); 400 for a malformed id, 404 if none."""
    run_id = request.path_params["run_id"]
    if not RUN_ID.match(run_id):
        raise ApiError(400, f"{run_id[:80]!r} is not a run id", hint="run ids are letters, digits, '_', '.', '-'")
    return ws_of(request).runs.get(run_id)


def public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k not in HIDDEN}


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def arguments_of(run: dict[str, Any]) -> dict[str, Any]:
    """The run's script arguments by name: ``job.arguments`` of its config, else ``--key value`` pairs of argv."""
    cfg = run.get("config")
    job = cfg.get("job") if isinstance(cfg, dict) else None
    if isinstance(job, dict) and isinstance(job.get("arguments"), dict):
        out: dict[str, Any] = {}
        _flatten("", job["arguments"], out)
        return out
    argv = run.get("arguments") or []
    out = {}
    i = 0
    while i < len(argv):
        item = str(argv[i])
        if item.startswith("--"):
            key, sep, value = item[2:].partition("=")
            if sep:
                out[key] = value
            elif i + 1 < len(argv) and not str(argv[i + 1]).startswith("--"):
                out[key] = argv[i + 1]
                i += 1
            else:
                out[key] = True
        i += 1
    return out


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
    from mltrain.workspace.run_pages import SORT_COLUMNS, RunQuery
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
    sort = text(request, "sort", "-created_at") or "-created_at"
    descending = sort.startswith("-")
    sort = sort.lstrip("-")
    if sort not in SORT_COLUMNS and not (sort.startswith("metric:") and len(sort) > 7):
        raise ApiError(
            400,
            f"cannot sort by {sort[:60]!r}",
            hint="sort by " + ", ".join(SORT_COLUMNS) + " or metric:KEY (prefix - for descending)",
        )
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
    from mltrain.workspace.run_pages import latest_scalars, tags_of

    ws = ws_of(request)
    query = run_query(request)
    rows, total = ws.runs.page(query)
    ids = [r["id"] for r in rows]
    metrics = latest_scalars(ws.db, ids)
    tags = tags_of(ws.db, ids)
    for r in rows:
        r["metrics"] = metrics.get(r["id"], {})
        r["tags"] = tags.get(r["id"], {})
    return json_response({"runs": rows, "total": total, "offset": query.offset, "limit": query.limit})


def experiments(request: Request) -> Response:
    return json_response(ws_of(request).runs.experiments())


def metric_keys(request: Request) -> Response:
    return json_response(ws_of(request).metrics.all_keys())


# -- one run -----------------------------------------------------------------------------------------
def _tables(ws: Workspace, run_id: str, keys: list[dict[str, Any]]) -> dict[str, Any]:
    """Lists and tables the run logged (bounded to TABLE_ROWS rows each)."""
    out: dict[str, Any] = {}
    for k in keys:
        if k["kind"] not in ("list", "row", "table") or k["key"] in out:
            continue
        records = ws.metrics.history(run_id, k["key"])
        if k["kind"] == "row":
            table: dict[str, list[Any]] = {}
            for rec in records[:TABLE_ROWS]:
                if isinstance(rec["value"], dict):
                    for col, v in rec["value"].items():
                        table.setdefault(col, []).append(v)
            out[k["key"]] = {"kind": "row", "columns": table}
        elif records:
            value = records[-1]["value"]
            if isinstance(value, dict):
                out[k["key"]] = {
                    "kind": "table",
                    "columns": {c: list(v)[:TABLE_ROWS] if isinstance(v, list) else [v] for c, v in value.items()},
                }
            else:
                out[k["key"]] = {
                    "kind": "list",
                    "values": list(value)[:TABLE_ROWS] if isinstance(value, list) else [value],
                }
    return out


def _snapshot(ws: Workspace, snapshot_id: str | None) -> dict[str, Any] | None:
    from mltrain.errors import MltrainError

    if not snapshot_id:
        return None
    try:
        snap = ws.snapshots.get(snapshot_id)
    except MltrainError as exc:
        return {"id": snapshot_id, "error": str(exc)}
    files = [{"path": f.path, "size": f.size} for f in snap.files[:200]]
    return {
        "id": snap.id,
        "source_dir": snap.source_dir,
        "file_count": len(snap.files),
        "total_bytes": snap.total_bytes,
        "files": files,
    }


def get_run(request: Request) -> Response:
    from mltrain.workspace.runs import TERMINAL

    ws = ws_of(request)
    run = run_of(request)
    run_id = run["id"]
    keys = ws.metrics.keys(run_id)
    children = ws.runs.list(parent_run_id=run_id, limit=1)
    return json_response(
        {
            "run": public(run),
            "args": arguments_of(run),
            "terminal": run["status"] in TERMINAL,
            "history": ws.runs.history(run_id),
            "tags": ws.runs.tags(run_id),
            "metric_keys": [{k: v for k, v in key.items() if k != "latest"} for key in keys],
            "scalars": {k["key"]: k["latest"] for k in keys if k["kind"] == "scalar"},
            "tables": _tables(ws, run_id, keys),
            "artifacts": ws.runs.artifacts(run_id),
            "models": [
                {
                    "name": m.name,
                    "version": m.version,
                    "format": m.format,
                    "framework": m.framework,
                    "framework_version": m.framework_version,
                }
                for m in ws.models.by_run(run_id)
            ],
            "snapshot": _snapshot(ws, run["snapshot_id"]),
            "has_children": bool(children),
        }
    )


def series(request: Request) -> Response:
    """The numeric series of one metric (``key``), or of every metric of the run (no ``key``; only
    the columns in ``fields``), as columns; only points stored after record ``after`` when given."""
    ws = ws_of(request)
    run = run_of(request)
    key = text(request, "key")
    after = integer(request, "after", 0, 0, 2**62)
    if key is None:
        if after:
            return json_response(ws.metrics.numeric_series(run["id"], after, MAX_SERIES_POINTS))
        fields = tuple((text(request, "fields") or "step,ts,value").split(","))
        if not fields or not set(fields) <= {"step", "ts", "value"} or len(set(fields)) != len(fields):
            raise ApiError(400, f"'fields' must name some of step, ts, value, got {','.join(fields)[:60]!r}")
        return json_response(ws.metrics.all_series(run["id"], MAX_SERIES_POINTS, fields))
    return json_response({"key": key, **ws.metrics.series(run["id"], key, after_id=after)})


def log(request: Request) -> Response:
    from mltrain.runs.output import BUILD_LOG, STD_LOG
    from mltrain.workspace.run_files import read_run_file

    ws = ws_of(request)
    run = run_of(request)
    offset = integer(request, "offset", 0, 0, 2**62)
    limit = integer(request, "limit", LOG_CHUNK, 1, 4 * LOG_CHUNK)
    rel = BUILD_LOG if flag(request, "build") else STD_LOG
    data = read_run_file(ws, run, rel, offset, limit)
    return json_response({"offset": offset, "next_offset": offset + len(data), "text": data.decode("utf-8", "replace")})


def _artifact(request: Request, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    ws = ws_of(request)
    run = run_of(request)
    for art in ws.runs.artifacts(run["id"]):
        if art["path"] == path:
            if not ws.blobs.exists(art["sha256"]):
                raise ApiError(410, f"the content of artifact {path!r} is missing from the artifact root")
            return run, art
    raise ApiError(404, f"run {run['id']} has no artifact {path[:200]!r}", hint="GET /api/runs/ID lists its artifacts")


def artifact(request: Request) -> Response:
    ws = ws_of(request)
    path = request.path_params["path"]
    _run, art = _artifact(request, path)
    name = PurePosixPath(path).name
    suffix = PurePosixPath(path).suffix.lower()
    download = flag(request, "download")
    if suffix in IMAGE_TYPES and not download:
        media, disposition = IMAGE_TYPES[suffix], "inline"
    elif suffix in TEXT_SUFFIXES and not download:
        media, disposition = "text/plain; charset=utf-8", "inline"
    else:
        media, disposition = "application/octet-stream", "attachment"
    from urllib.parse import quote

    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'",
        "X-Content-Type-Options": "nosniff",
    }
    return FileResponse(ws.blobs.path(art["sha256"]), media_type=media, headers=headers)


def preview(request: Request) -> Response:
    """The first rows of a CSV/TSV artifact."""
    import csv
    import io

    path = text(request, "path", max_chars=1024)
    if not path:
        raise ApiError(400, "parameter 'path' (the artifact) is required")
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in (".csv", ".tsv"):
        raise ApiError(
            400,
            f"no table preview for {suffix or 'files without a suffix'}",
            hint="tables preview from .csv and .tsv artifacts",
        )
    _run, art = _artifact(request, path)
    with open(ws_of(request).blobs.path(art["sha256"]), "rb") as f:
        data = f.read(PREVIEW_BYTES)
    lines = data.decode("utf-8", "replace").splitlines()
    complete = art["size"] <= PREVIEW_BYTES
    if not complete:
        lines = lines[:-1]  # the last line may be cut
    rows = list(
        csv.reader(io.StringIO("\n".join(lines[: PREVIEW_ROWS + 1])), delimiter="\t" if suffix == ".tsv" else ",")
    )
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    return json_response({"columns": header, "rows": body, "truncated": len(lines) > PREVIEW_ROWS + 1 or not complete})


# -- compare and sweeps ------------------------------------------------------------------------------
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


def compare(request: Request) -> Response:
    ws = ws_of(request)
    raw = text(request, "runs", max_chars=MAX_COMPARE * 65) or ""
    ids = [i for i in raw.split(",") if i]
    if not 1 <= len(ids) <= MAX_COMPARE:
        raise ApiError(400, f"give 1 to {MAX_COMPARE} run ids in 'runs' (comma-separated), got {len(ids)}")
    for i in ids:
        if not RUN_ID.match(i):
            raise ApiError(400, f"{i[:80]!r} is not a run id")
    runs = [ws.runs.get(i) for i in ids]
    return json_response({"runs": _summaries(ws, runs)})


def sweep(request: Request) -> Response:
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


# -- writes ------------------------------------------------------------------------------------------
async def cancel(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    from mltrain.workspace.runs import TERMINAL

    await json_body(request)
    run = await run_in_threadpool(run_of, request)
    if run["status"] in TERMINAL:
        raise ApiError(409, f"run {run['id']} already ended: {run['status']}")
    rec = await run_in_threadpool(ws_of(request).runs.request_cancel, run["id"])
    return json_response({"id": rec["id"], "status": rec["status"], "cancel_requested": bool(rec["cancel_requested"])})
