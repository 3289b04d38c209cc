"""A run as ``mltrain runs show --json`` and ``GET /api/runs/{id}`` give it (:func:`run_detail`), a run's
fields as every listing shows them (:func:`public_run`), its arguments by name and its data links."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mltrain.workspace import Workspace
    from mltrain.workspace.data import DataLink
    from mltrain.workspace.metrics import MetricKey
    from mltrain.workspace.runs import RunInfo

HIDDEN = ("driver_start", "child_start")  # process start tokens: only recovery needs them
TABLE_ROWS = 500  # rows of a logged list or table shown
SNAPSHOT_FILES = 200  # files of the snapshot listed


def public_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's fields as shown: every recorded field but the process start tokens."""
    return {k: v for k, v in run.items() if k not in HIDDEN}


def run_detail(ws: Workspace, run_id: str) -> dict[str, Any]:
    """Everything shown about one run (a full id or a unique prefix): its fields (also nested as ``run``,
    the dashboard's shape), ``args`` by name, ``terminal``, status ``history``, ``tags``, ``metrics``
    (the last value of each key; a row-logged table as columns), ``series`` (count, last, min, max of
    each scalar series), ``metric_keys`` and ``scalars`` (the latest scalar of each key), logged
    ``tables``, ``artifacts``, the ``models`` registered from it, its ``snapshot``, ``has_children``,
    and for a sweep its ``children`` (best first) and ``primary_metric``, and the data it read and
    wrote (``inputs``, ``outputs``)."""
    from mltrain.runs.sweep.report import sweep_children

    run = ws.runs.get(run_id)
    rid = run.id
    keys = ws.metrics.keys(rid)
    shown = public_run(run)
    sweep = sweep_children(ws, rid)
    return {
        **shown,
        "run": shown,
        "args": arguments_of(run),
        "terminal": run.terminal,
        "history": ws.runs.history(rid),
        "tags": ws.runs.tags(rid),
        "metrics": ws.metrics.summary(rid),
        "series": ws.metrics.series_stats(rid),
        "metric_keys": [{"key": k.key, "kind": k.kind, "numeric": k.numeric} for k in keys],
        "scalars": {k.key: k.latest for k in keys if k.kind == "scalar"},
        "tables": _tables(ws, rid, keys),
        "artifacts": ws.runs.artifacts(rid),
        "models": [
            {
                "name": m.name,
                "version": m.version,
                "ref": m.ref,
                "format": m.format,
                "framework": m.framework,
                "framework_version": m.framework_version,
            }
            for m in ws.models.by_run(rid)
        ],
        "snapshot": _snapshot(ws, run.snapshot_id),
        "has_children": bool(ws.runs.list(parent_run_id=rid, limit=1)),
        **({"children": sweep[1], "primary_metric": sweep[0]} if sweep else {}),
        **run_data(ws, rid),
    }


def _tables(ws: Workspace, run_id: str, keys: list[MetricKey]) -> dict[str, Any]:
    """Lists and tables the run logged (bounded to TABLE_ROWS rows each)."""
    out: dict[str, Any] = {}
    for k in keys:
        if k.kind not in ("list", "row", "table") or k.key in out:
            continue
        records = ws.metrics.history(run_id, k.key)
        if k.kind == "row":
            table: dict[str, list[Any]] = {}
            for rec in records[:TABLE_ROWS]:
                if isinstance(rec.value, dict):
                    for col, v in rec.value.items():
                        table.setdefault(col, []).append(v)
            out[k.key] = {"kind": "row", "columns": table}
        elif records:
            value = records[-1].value
            if isinstance(value, dict):
                out[k.key] = {
                    "kind": "table",
                    "columns": {c: list(v)[:TABLE_ROWS] if isinstance(v, list) else [v] for c, v in value.items()},
                }
            else:
                out[k.key] = {
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
    files = [{"path": f.path, "size": f.size} for f in snap.files[:SNAPSHOT_FILES]]
    return {
        "id": snap.id,
        "source_dir": snap.source_dir,
        "file_count": len(snap.files),
        "total_bytes": snap.total_bytes,
        "files": files,
    }


def link_json(link: DataLink) -> dict[str, Any]:
    """A run's input or output: its key in the job, the data version (or plain URI), digest and mode."""
    return {
        "key": link.name,
        "name": link.data_name,
        "version": link.data_version,
        "uri": link.uri,
        "digest": link.digest,
        "mode": link.mode,
    }


def run_data(ws: Workspace, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """``{"inputs": [...], "outputs": [...]}`` of a run (see :func:`link_json`)."""
    links = ws.data.links(run_id=run_id)
    return {
        f"{direction}s": [link_json(x) for x in links if x.direction == direction] for direction in ("input", "output")
    }


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def arguments_of(run: Mapping[str, Any] | RunInfo) -> dict[str, Any]:
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
