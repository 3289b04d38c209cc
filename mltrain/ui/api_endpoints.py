"""API of endpoints: the list, one endpoint, its server log, and what the dashboard asks the endpoint's
own server for (``/metrics``, the input schema of ``/swagger.json``, a test request to ``/score``).

The dashboard talks to an endpoint's server only when it is on a loopback address or on a host given
with ``--endpoint-host``: an endpoint's address is a stored value, and a key typed into a page must
not go wherever a record says. A key arrives in the ``X-Endpoint-Key`` header, is passed on as
``Authorization: Bearer KEY`` and never stored.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.params import ApiError, integer, is_loopback, json_body, json_response, name_param, ws_of
from mltrain.views.endpoints import endpoint_view

if TYPE_CHECKING:
    from mltrain.workspace.endpoints import Endpoint

KEY_HEADER = "x-endpoint-key"
ANSWER_BYTES = 1 << 20  # of an endpoint's answer passed on
LOG_TAIL = 64 * 1024
MAX_LOG_TAIL = 1 << 20


def list_endpoints(request: Request) -> Response:
    """Every endpoint as ``mltrain endpoints list --json`` gives it (:func:`mltrain.views.endpoints.endpoint_view`):
    live state, model, target, scoring URI, resources; keys by fingerprint only."""
    ws = ws_of(request)
    return json_response([endpoint_view(ws, r) for r in ws.endpoints.list()])


def get_endpoint(request: Request) -> Response:
    """One endpoint: as in the list, with the aliases that point at its model version (``aliases``),
    whether the dashboard may talk to its server (``reachable``, else ``unreachable_reason``) and the
    input its server takes (``input_schema``: schema, example, or a ``note`` why there is none)."""
    from mltrain.errors import NotFoundError

    ws = ws_of(request)
    rec = ws.endpoints.get(name_param(request))
    out = endpoint_view(ws, rec)
    try:
        out["aliases"] = ws.models.get(rec.model).aliases
    except NotFoundError:
        out["aliases"] = []
    try:
        _address(request, rec)
        out.update(reachable=True, unreachable_reason=None)
    except ApiError as exc:
        out.update(reachable=False, unreachable_reason=f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    out["input_schema"] = input_schema(request, rec)
    return json_response(out)


def input_schema(request: Request, rec: Endpoint) -> dict[str, Any]:
    """What the endpoint's server takes, from its ``/swagger.json`` (no key needed): ``{"schema",
    "example", "endpoint"}``, or ``{"schema": None, "note": why}`` when its server cannot say."""
    import json

    try:
        status, body = _ask(request, rec, "/swagger.json", key_needed=False, timeout=2)
    except ApiError as exc:
        return {"schema": None, "note": exc.message, "endpoint": rec.name}
    try:
        schema = json.loads(body)["components"]["schemas"]["ScoreRequest"] if status == 200 else None
    except (ValueError, KeyError, TypeError):
        schema = None
    if not isinstance(schema, dict):
        return {"schema": None, "note": f"its /swagger.json answered HTTP {status} without a request schema",
                "endpoint": rec.name}  # fmt: skip
    return {"schema": schema, "example": schema.get("example"), "endpoint": rec.name}


def _trusted_host(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether the dashboard may talk to ``host``: a loopback or unspecified address (both reach this
    machine), ``localhost``, or a host given with ``--endpoint-host``. A name is never resolved to
    decide: a stored record or a DNS answer must not choose where a key goes."""
    import ipaddress

    if host in allowed or is_loopback(host):
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _address(request: Request, rec: Endpoint) -> tuple[str, int]:
    """(host, port) of the endpoint's server: 409 without an HTTP address, 403 unless it is trusted."""
    from urllib.parse import urlsplit

    parts = urlsplit(rec.uri or "")
    try:
        port = parts.port or 80
    except ValueError:
        port = 0
    if parts.scheme != "http" or not parts.hostname or not port:
        raise ApiError(409, f"endpoint {rec.name} has no HTTP address the dashboard can reach")
    if not _trusted_host(parts.hostname, request.app.state.settings.endpoint_hosts):
        raise ApiError(
            403,
            f"endpoint {rec.name} is at {parts.hostname[:200]!r}, not a loopback address: the dashboard sends "
            "an endpoint's key only to loopback addresses and hosts it was told to trust",
            hint=f"if you trust that host, start the dashboard with mltrain ui --endpoint-host {parts.hostname[:200]}",
        )
    return parts.hostname, port


def _endpoint(request: Request) -> Endpoint:
    return ws_of(request).endpoints.get(name_param(request))


def _ask(
    request: Request,
    rec: Endpoint,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    key_needed: bool = True,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """Send ``method path`` to the endpoint's server (the key of the request's X-Endpoint-Key header
    as its Authorization when ``key_needed``): the status and at most ANSWER_BYTES of the answer."""
    import http.client

    host, port = _address(request, rec)
    key = request.headers.get(KEY_HEADER)
    if key_needed and rec.auth and not key:
        raise ApiError(
            401,
            f"endpoint {rec.name} needs its key for {path}",
            hint="enter a key of the endpoint (mltrain endpoints keys NAME --regenerate primary)",
        )
    headers = {"Authorization": f"Bearer {key}"} if key and key_needed else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read(ANSWER_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        raise ApiError(502, f"endpoint {rec.name} did not answer {path}: {exc}") from None
    finally:
        conn.close()
    return resp.status, data


def endpoint_metrics(request: Request) -> Response:
    """The endpoint's request and latency figures from its ``/metrics`` (the key, when the endpoint
    needs one, in the ``X-Endpoint-Key`` header), with the time they were read (``at``)."""
    from mltrain.ui.prometheus import summarize

    rec = _endpoint(request)
    status, body = _ask(request, rec, "/metrics")
    if status in (401, 403):
        raise ApiError(401, f"endpoint {rec.name} refused the key", hint="check the key (mltrain endpoints keys NAME)")
    if status != 200:
        raise ApiError(502, f"endpoint {rec.name} answered /metrics with HTTP {status}")
    return json_response({"name": rec.name, "at": time.time(), **summarize(body.decode("utf-8", "replace"))})


async def endpoint_score(request: Request) -> Response:
    """Send the JSON body to the endpoint's ``/score`` (a test request; the key in ``X-Endpoint-Key``):
    the endpoint's ``status``, its answer (``body``: JSON, or text) and the round trip (``took_ms``)."""
    import json

    from starlette.concurrency import run_in_threadpool

    payload = json.dumps(await json_body(request)).encode()
    rec = await run_in_threadpool(_endpoint, request)
    started = time.perf_counter()
    status, data = await run_in_threadpool(_ask, request, rec, "/score", "POST", payload)
    took = (time.perf_counter() - started) * 1000
    text = data.decode("utf-8", "replace")
    try:
        answer: Any = json.loads(text)
    except ValueError:
        answer = text
    return json_response({"status": status, "body": answer, "took_ms": took})


def endpoint_logs(request: Request) -> Response:
    """The end of a local endpoint's server log (``tail`` bytes, default 64 KiB): ``{text, size}``.
    The file is found from the workspace and the endpoint's name, never from a stored path, and is
    not read through a symbolic link."""
    from mltrain.deploy.base import LOG_FILE
    from mltrain.deploy.steps import endpoints_root

    ws = ws_of(request)
    rec = _endpoint(request)
    tail = integer(request, "tail", LOG_TAIL, 1, MAX_LOG_TAIL)
    if rec.target != "local":
        raise ApiError(
            409,
            f"endpoint {rec.name} runs on {rec.target}: its log is kept there",
            hint=f"mltrain endpoints logs {rec.name}",
        )
    path = endpoints_root(ws) / rec.name / LOG_FILE
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))  # a link is never followed out
    except FileNotFoundError:
        return json_response({"text": "", "size": 0})
    except OSError as exc:
        raise ApiError(409, f"cannot read the log of endpoint {rec.name}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - tail))
        data = f.read(tail)
    return json_response({"text": data.decode("utf-8", "replace"), "size": size})
