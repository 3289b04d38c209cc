"""API of models, endpoints and environments (reads), and the registry's write actions."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.params import ApiError, is_loopback, json_body, json_response, models_of, ws_of

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
ALIAS = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
METRICS_BYTES = 1 << 20
KEY_HEADER = "x-endpoint-key"


def _name(request: Request) -> str:
    name = request.path_params["name"]
    if not NAME.match(name):
        raise ApiError(400, f"{name[:80]!r} is not a valid name", hint="letters, digits, '.', '_' and '-'")
    return name


def _version_json(mv: Any) -> dict[str, Any]:
    data = asdict(mv)
    data.pop("id", None)
    return data


def list_models(request: Request) -> Response:
    """The latest version of every model (archived ones too)."""
    latest = models_of(request).list(include_archived=True)
    return json_response([_version_json(m) for m in latest])


def get_model(request: Request) -> Response:
    """Every version of a model (archived too), with aliases, tags, files and lineage to its run."""
    from mltrain.errors import NotFoundError

    ws = ws_of(request)
    name = _name(request)
    models = models_of(request)
    versions = models.list(name, include_archived=True)
    if not versions:
        raise NotFoundError(f"no model {name!r} in this workspace")
    out = []
    for mv in versions:
        full = models.get(mv.ref, include_archived=True)
        item = _version_json(full)
        if full.run_id:
            try:
                run = ws.runs.get(full.run_id)
                item["lineage"] = {
                    "run": run["id"],
                    "experiment": run["experiment"],
                    "status": run["status"],
                    "environment": run["env_name"],
                    "environment_hash": run["env_hash"],
                    "snapshot": run["snapshot_id"],
                    "git_commit": run["git_commit"],
                }
            except NotFoundError:
                item["lineage"] = None
        out.append(item)
    return json_response({"name": name, "versions": out})


async def set_alias(request: Request) -> Response:
    """Point NAME@alias at a version (needs --allow-write and the token)."""
    from starlette.concurrency import run_in_threadpool

    name = _name(request)
    body = await json_body(request)
    version, alias = body.get("version"), body.get("alias")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ApiError(400, "'version' must be a positive integer")
    if not isinstance(alias, str) or not ALIAS.match(alias):
        raise ApiError(400, "'alias' must be letters, digits, '.', '_' or '-' (at most 128)")
    mv = await run_in_threadpool(models_of(request).set_alias, name, version, alias)
    return json_response(_version_json(mv))


async def archive(request: Request) -> Response:
    """Archive or restore a version (needs --allow-write and the token)."""
    from starlette.concurrency import run_in_threadpool

    name = _name(request)
    version = request.path_params["version"]
    body = await json_body(request)
    archived = body.get("archived", True)
    if not isinstance(archived, bool):
        raise ApiError(400, "'archived' must be true or false")
    mv = await run_in_threadpool(models_of(request).set_archived, f"{name}:{version}", archived)
    return json_response(_version_json(mv))


# -- endpoints ---------------------------------------------------------------------------------------
def _endpoint_json(rec: dict[str, Any], state: str, reason: str) -> dict[str, Any]:
    keep = (
        "name",
        "model_name",
        "model_version",
        "target",
        "uri",
        "auth",
        "cpu",
        "memory_gb",
        "workers",
        "created_at",
        "updated_at",
        "error",
    )
    out = {k: rec.get(k) for k in keep}
    out.update(state=state, reason=reason or None, recorded_state=rec["state"])
    if rec.get("uri"):
        out.update(scoring_uri=f"{rec['uri']}/score", swagger_uri=f"{rec['uri']}/swagger.json")
    return out


def list_endpoints(request: Request) -> Response:
    """Every endpoint with its live state, model, target, scoring URI and resources (no key material)."""
    from mltrain.deploy.service import endpoint_status
    from mltrain.deploy.store import EndpointStore

    ws = ws_of(request)
    return json_response([_endpoint_json(r, *endpoint_status(ws, r)) for r in EndpointStore(ws).list()])


def _trusted_host(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether the dashboard may send an endpoint's key to ``host``: a loopback or unspecified address
    (both reach this machine), ``localhost``, or a host given with ``--endpoint-host``. A name is never
    resolved to decide: a stored record or a DNS answer must not choose where a key goes."""
    import ipaddress

    if host in allowed or is_loopback(host):
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def endpoint_metrics(request: Request) -> Response:
    """The endpoint's request and latency figures from its ``/metrics``. The key, when the endpoint
    needs one, comes in the ``X-Endpoint-Key`` header; it is passed on and never stored. Only endpoints
    on a loopback address or a host given with ``--endpoint-host`` are asked (403 for others)."""
    import http.client
    from urllib.parse import urlsplit

    from mltrain.deploy.store import EndpointStore
    from mltrain.ui.prometheus import summarize

    rec = EndpointStore(ws_of(request)).get(_name(request))
    uri = rec.get("uri")
    parts = urlsplit(uri or "")
    try:
        port = parts.port or 80
    except ValueError:
        port = 0
    if parts.scheme != "http" or not parts.hostname or not port:
        raise ApiError(409, f"endpoint {rec['name']} has no HTTP address to read metrics from")
    if not _trusted_host(parts.hostname, request.app.state.settings.endpoint_hosts):
        raise ApiError(
            403,
            f"endpoint {rec['name']} is at {parts.hostname[:200]!r}, not a loopback address: the dashboard sends "
            "an endpoint's key only to loopback addresses and hosts it was told to trust",
            hint=f"if you trust that host, start the dashboard with mltrain ui --endpoint-host {parts.hostname[:200]}",
        )
    key = request.headers.get(KEY_HEADER)
    if rec["auth"] and not key:
        raise ApiError(
            401,
            f"endpoint {rec['name']} needs its key for /metrics",
            hint="enter a key of the endpoint (mltrain endpoints keys NAME --regenerate primary)",
        )
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    conn = http.client.HTTPConnection(parts.hostname, port, timeout=3)
    try:
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        body = resp.read(METRICS_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        raise ApiError(502, f"endpoint {rec['name']} did not answer /metrics: {exc}") from None
    finally:
        conn.close()
    if resp.status in (401, 403):
        raise ApiError(
            401, f"endpoint {rec['name']} refused the key", hint="check the key (mltrain endpoints keys NAME)"
        )
    if resp.status != 200:
        raise ApiError(502, f"endpoint {rec['name']} answered /metrics with HTTP {resp.status}")
    import time

    return json_response({"name": rec["name"], "at": time.time(), **summarize(body.decode("utf-8", "replace"))})


# -- environments ------------------------------------------------------------------------------------
def list_environments(request: Request) -> Response:
    """Every environment record (spec, lock, size, last use). A venv recorded without a size is
    measured here (once per dashboard process, not stored: the dashboard does not write on reads)."""
    from pathlib import Path

    from mltrain.environments.records import list_environments as records
    from mltrain.environments.venv import READY_MARKER
    from mltrain.workspace.paths import folder_size

    sizes: dict[str, int] = request.app.state.__dict__.setdefault("_env_sizes", {})
    out = records(ws_of(request))
    for rec in out:
        if rec["builder"] == "venv" and rec.get("location"):
            folder = Path(rec["location"])
            rec["present"] = (folder / READY_MARKER).exists()
            if rec["size_bytes"] is None and rec["present"]:
                if rec["hash"] not in sizes:
                    sizes[rec["hash"]] = folder_size(folder)[0]
                rec["size_bytes"] = sizes[rec["hash"]]
    return json_response(out)
