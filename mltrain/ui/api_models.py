"""API of the model registry: models, their versions (one version with its lineage), and the write
actions on aliases and archiving."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.params import ApiError, json_body, json_response, name_param, ws_of
from mltrain.views.models import lineage, model_detail, model_version_json

if TYPE_CHECKING:
    from mltrain.workspace.models import ModelVersion

ALIAS = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _alias_param(request: Request) -> str:
    alias = request.path_params["alias"]
    if not ALIAS.match(alias):
        raise ApiError(400, f"{alias[:80]!r} is not an alias", hint="letters, digits, '.', '_' or '-' (at most 128)")
    return alias


def list_models(request: Request) -> Response:
    """The latest version of every model (archived ones too), with ``versions``: every version's
    number, aliases and whether it is archived."""
    models = ws_of(request).models
    out = []
    for latest in models.list(include_archived=True):
        item = model_version_json(latest)
        item["versions"] = [
            {"version": v.version, "aliases": v.aliases, "archived": v.archived}
            for v in models.list(latest.name, include_archived=True)
        ]
        out.append(item)
    return json_response(out)


def _versions(request: Request, name: str) -> list[ModelVersion]:
    from mltrain.errors import NotFoundError

    versions = ws_of(request).models.list(name, include_archived=True)
    if not versions:
        raise NotFoundError(f"no model {name!r} in this workspace", hint="the models page lists them")
    return versions


def get_model(request: Request) -> Response:
    """Every version of a model (archived too), with aliases, tags, files and lineage to its run."""
    ws = ws_of(request)
    name = name_param(request)
    out = []
    for mv in _versions(request, name):
        item = model_version_json(ws.models.get(mv.ref, include_archived=True))
        item["lineage"] = lineage(ws, mv.run_id)
        out.append(item)
    return json_response({"name": name, "versions": out})


def get_version(request: Request) -> Response:
    """One version, as ``mltrain models show --json`` gives it (:func:`mltrain.views.models.model_detail`:
    description, resources, files and size, aliases, tags, lineage with the run's metrics and the data
    it read, the latest metrics of that run, its environment, the endpoints serving it), and the input
    it takes (``input_schema``, from the first endpoint serving it that can say)."""
    from mltrain.errors import NotFoundError
    from mltrain.ui.api_endpoints import input_schema

    ws = ws_of(request)
    name = name_param(request)
    version = request.path_params["version"]
    numbers = [v.version for v in _versions(request, name)]
    if version not in numbers:
        raise NotFoundError(
            f"model {name} has no version {version}", hint=f"its versions: {', '.join(map(str, sorted(numbers)))}"
        )
    item = model_detail(ws, ws.models.get(f"{name}:{version}", include_archived=True))
    item["input_schema"] = {"schema": None, "note": "no endpoint serves this version"}
    for e in item["endpoints"]:
        item["input_schema"] = input_schema(request, ws.endpoints.get(e["name"]))
        if item["input_schema"]["schema"]:
            break
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
    mv = await run_in_threadpool(ws_of(request).models.set_alias, name, version, alias)
    return json_response(model_version_json(mv))


async def remove_alias(request: Request) -> Response:
    """Remove NAME@alias (needs --allow-write and the token); 404 when the model has no such alias."""
    from starlette.concurrency import run_in_threadpool

    name = name_param(request)
    alias = _alias_param(request)
    version = await run_in_threadpool(ws_of(request).models.remove_alias, name, alias)
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
    mv = await run_in_threadpool(ws_of(request).models.set_archived, f"{name}:{version}", archived)
    return json_response(model_version_json(mv))
