"""API of the model registry: models, their versions (one version with its lineage), and the write
actions on aliases and archiving."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.params import ApiError, json_body, json_response, models_of, name_param, ws_of

if TYPE_CHECKING:
    from mltrain.registry.version import ModelVersion
    from mltrain.workspace import Workspace

ALIAS = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _alias_param(request: Request) -> str:
    alias = request.path_params["alias"]
    if not ALIAS.match(alias):
        raise ApiError(400, f"{alias[:80]!r} is not an alias", hint="letters, digits, '.', '_' or '-' (at most 128)")
    return alias


def version_json(mv: ModelVersion) -> dict[str, Any]:
    data = asdict(mv)
    data.pop("id", None)
    return data


def _lineage(ws: Workspace, run_id: str | None) -> dict[str, Any] | None:
    """The run a version was registered from: experiment, status, environment, snapshot, git commit."""
    from mltrain.errors import NotFoundError

    if not run_id:
        return None
    try:
        run = ws.runs.get(run_id)
    except NotFoundError:
        return None
    return {
        "run": run["id"],
        "experiment": run["experiment"],
        "status": run["status"],
        "environment": run["env_name"],
        "environment_hash": run["env_hash"],
        "snapshot": run["snapshot_id"],
        "git_commit": run["git_commit"],
    }


def list_models(request: Request) -> Response:
    """The latest version of every model (archived ones too), with ``versions``: every version's
    number, aliases and whether it is archived."""
    models = models_of(request)
    out = []
    for latest in models.list(include_archived=True):
        item = version_json(latest)
        item["versions"] = [
            {"version": v.version, "aliases": v.aliases, "archived": v.archived}
            for v in models.list(latest.name, include_archived=True)
        ]
        out.append(item)
    return json_response(out)


def _versions(request: Request, name: str) -> list[ModelVersion]:
    from mltrain.errors import NotFoundError

    versions = models_of(request).list(name, include_archived=True)
    if not versions:
        raise NotFoundError(f"no model {name!r} in this workspace", hint="the models page lists them")
    return versions


def get_model(request: Request) -> Response:
    """Every version of a model (archived too), with aliases, tags, files and lineage to its run."""
    ws = ws_of(request)
    name = name_param(request)
    models = models_of(request)
    out = []
    for mv in _versions(request, name):
        item = version_json(models.get(mv.ref, include_archived=True))
        item["lineage"] = _lineage(ws, mv.run_id)
        out.append(item)
    return json_response({"name": name, "versions": out})


def get_version(request: Request) -> Response:
    """One version: description, resources, files and size, aliases, tags, the latest metrics of the
    run that made it, lineage (run, environment, ``data``: the data versions that run read), the
    endpoints serving it and the input it takes (``input_schema``, from the first of them that can say)."""
    from mltrain.deploy.store import EndpointStore
    from mltrain.environments.records import list_environments
    from mltrain.errors import NotFoundError
    from mltrain.ui.api_data import run_data
    from mltrain.ui.api_endpoints import input_schema
    from mltrain.workspace.run_pages import latest_scalars

    ws = ws_of(request)
    name = name_param(request)
    version = request.path_params["version"]
    numbers = [v.version for v in _versions(request, name)]
    if version not in numbers:
        raise NotFoundError(
            f"model {name} has no version {version}", hint=f"its versions: {', '.join(map(str, sorted(numbers)))}"
        )
    mv = models_of(request).get(f"{name}:{version}", include_archived=True)
    item = version_json(mv)
    item["size"] = sum(int(f["size"]) for f in mv.files)
    item["lineage"] = lineage = _lineage(ws, mv.run_id)
    if lineage:
        lineage["data"] = run_data(ws, lineage["run"])["inputs"]
    item["run_metrics"] = latest_scalars(ws.db, [lineage["run"]])[lineage["run"]] if lineage else {}
    env_hash = mv.env_hash or (lineage or {}).get("environment_hash")
    envs = [e for e in list_environments(ws) if env_hash and e["hash"] == env_hash]
    item["environment"] = {k: envs[0][k] for k in ("name", "version", "builder", "hash", "python")} if envs else None
    serving = [e for e in EndpointStore(ws).list() if e["model_name"] == name and e["model_version"] == version]
    item["endpoints"] = [{"name": e["name"], "target": e["target"], "state": e["state"]} for e in serving]
    item["input_schema"] = {"schema": None, "note": "no endpoint serves this version"}
    for e in serving:
        item["input_schema"] = input_schema(request, e)
        if item["input_schema"]["schema"]:
            break
    item["versions"] = sorted(numbers)
    return json_response(item)


async def set_alias(request: Request) -> Response:
    """Point NAME@alias at a version (needs --allow-write and the token)."""
    from starlette.concurrency import run_in_threadpool

    name = name_param(request)
    body = await json_body(request)
    version, alias = body.get("version"), body.get("alias")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ApiError(400, "'version' must be a positive integer")
    if not isinstance(alias, str) or not ALIAS.match(alias):
        raise ApiError(400, "'alias' must be letters, digits, '.', '_' or '-' (at most 128)")
    mv = await run_in_threadpool(models_of(request).set_alias, name, version, alias)
    return json_response(version_json(mv))


async def remove_alias(request: Request) -> Response:
    """Remove NAME@alias (needs --allow-write and the token); 404 when the model has no such alias."""
    from starlette.concurrency import run_in_threadpool

    name = name_param(request)
    alias = _alias_param(request)
    version = await run_in_threadpool(models_of(request).remove_alias, name, alias)
    return json_response({"name": name, "alias": alias, "version": version})


async def archive(request: Request) -> Response:
    """Archive or restore a version (needs --allow-write and the token)."""
    from starlette.concurrency import run_in_threadpool

    name = name_param(request)
    version = request.path_params["version"]
    body = await json_body(request)
    archived = body.get("archived", True)
    if not isinstance(archived, bool):
        raise ApiError(400, "'archived' must be true or false")
    mv = await run_in_threadpool(models_of(request).set_archived, f"{name}:{version}", archived)
    return json_response(version_json(mv))
