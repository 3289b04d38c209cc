"""API of data assets: the assets, one asset's versions, one version with a page of its manifest and
its lineage (the run that wrote it → the version → the runs that read it → the models registered from
them); the data links of a run or a model's run, as the run and model pages show them.

A version's datastore is shown by name and kind only: its recorded options are never answered."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.params import integer, json_response, name_param, ws_of

if TYPE_CHECKING:
    from mltrain.workspace import Workspace
    from mltrain.workspace.data import DataVersion

MANIFEST_PAGE = 1000  # manifest entries answered by default
MAX_MANIFEST_PAGE = 5000
LINEAGE_RUNS = 200  # the newest runs that read a version, answered with their models


def version_summary(dv: DataVersion) -> dict[str, Any]:
    """A version without its manifest, and its datastore by name and kind only."""
    return {
        "name": dv.name,
        "version": dv.version,
        "ref": dv.ref,
        "type": dv.type,
        "description": dv.description,
        "tags": dict(dv.tags),
        "aliases": list(dv.aliases),
        "archived": dv.archived,
        "source": dv.source,
        "stored": dv.stored,
        "datastore": {"name": dv.datastore, "kind": dv.datastore_kind},
        "digest": dv.digest,
        "size": dv.size,
        "file_count": dv.file_count,
        "created_at": dv.created_at,
        "producer_run_id": dv.producer_run_id,
    }


def list_data(request: Request) -> Response:
    """Every data asset (archived ones too, marked): its latest version (the newest not archived) with
    size, file count and creation time, and ``versions``: every version's number, aliases and whether it
    is archived (as the models list)."""
    assets: dict[str, list[DataVersion]] = {}
    for dv in ws_of(request).data.every_version():
        assets.setdefault(dv.name, []).append(dv)
    out = []
    for versions in assets.values():
        live = [v for v in versions if not v.archived]
        shown = [{"version": v.version, "aliases": list(v.aliases), "archived": v.archived} for v in versions]
        # the latest version not archived; "archived" when every version is
        out.append({**version_summary((live or versions)[0]), "versions": shown, "archived": not live})
    return json_response(out)


def get_data(request: Request) -> Response:
    """Every version of a data asset (archived too, marked), with aliases, digest, size, file count,
    datastore and the run that produced it."""
    from mltrain.errors import NotFoundError

    name = name_param(request)
    versions = ws_of(request).data.list(name, include_archived=True)
    if not versions:
        raise NotFoundError(f"no data asset {name!r} in this workspace", hint="the data page lists them")
    return json_response({"name": name, "versions": [version_summary(v) for v in versions]})


def _lineage(ws: Workspace, dv: DataVersion) -> dict[str, Any]:
    """The run that produced ``dv`` (and any other run that wrote it), the newest runs that read it
    (at most LINEAGE_RUNS, ``read_by_total`` says how many) and the models registered from them."""
    from mltrain.errors import NotFoundError

    links = ws.data.links(version_id=dv.id)
    readers = [x for x in links if x.direction == "input"]
    total = len(readers)
    readers = readers[::-1][:LINEAGE_RUNS]
    writers = [x.run_id for x in links if x.direction == "output" and x.run_id != dv.producer_run_id]
    producer = None
    if dv.producer_run_id:
        try:
            run = ws.runs.get(dv.producer_run_id)
            producer = {"run": run.id, "experiment": run.experiment, "status": run.status}
        except NotFoundError:
            producer = {"run": dv.producer_run_id, "experiment": None, "status": None}
    statuses = ws.runs.statuses([*writers, *(x.run_id for x in readers)])
    models: dict[str, list[dict[str, Any]]] = {}
    for mv in ws.models.by_runs(x.run_id for x in readers):
        models.setdefault(str(mv.run_id), []).append({"name": mv.name, "version": mv.version})
    return {
        "produced_by": producer,
        "written_by": [{"run": r, "status": statuses.get(r)} for r in writers],
        "read_by": [
            {
                "run": x.run_id,
                "status": statuses.get(x.run_id),
                "key": x.name,
                "mode": x.mode,
                "digest": x.digest,
                "models": models.get(x.run_id, []),
            }
            for x in readers
        ],
        "read_by_total": total,
    }


def get_data_version(request: Request) -> Response:
    """One version: description, tags, aliases, source, datastore (name and kind), digest, a page of its
    manifest by path (``offset``, ``limit``: at most 5,000 entries, 1,000 by default; ``manifest.total``
    says how many in all) and its lineage: the run that produced it, the runs that read it and the
    models registered from those runs."""
    ws = ws_of(request)
    name = name_param(request)
    dv = ws.data.get(name, request.path_params["version"], include_archived=True, manifest=False)
    offset = integer(request, "offset", 0, 0, 100_000_000)
    limit = integer(request, "limit", MANIFEST_PAGE, 1, MAX_MANIFEST_PAGE)
    entries = ws.data.manifest_page(dv.id, offset, limit)
    return json_response(
        {
            **version_summary(dv),
            "versions": [v.version for v in ws.data.list(name, include_archived=True)][::-1],
            "manifest": {
                "entries": [asdict(e) for e in entries],
                "total": dv.file_count,
                "offset": offset,
                "limit": limit,
            },
            "lineage": _lineage(ws, dv),
        }
    )
