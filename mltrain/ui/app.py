"""The dashboard's Starlette application: pages, static files, the JSON API and its guards.

Guards, in order: the request line and query string are bounded (414), the headers too (431); on a
loopback address the ``Host`` header must name this server (no DNS rebinding); when a token is
required for reads (any non-loopback address) every request carries it (``Authorization: Bearer T``,
or the cookie set by opening a page with ``?token=T``: it holds a read credential derived from the
token, since browsers send a host's cookies to all its ports); write actions need ``--allow-write``
(else 403) and the token in the ``Authorization`` header (else 401). Errors are JSON ``{"error",
"hint"}``, 4xx for bad input.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from mltrain.ui import api_artifacts as artifacts
from mltrain.ui import api_compare as compare
from mltrain.ui import api_data as data
from mltrain.ui import api_endpoints as endpoints
from mltrain.ui import api_environments as environments
from mltrain.ui import api_models as models
from mltrain.ui import api_runs as runs
from mltrain.ui.events import run_events
from mltrain.ui.params import ApiError, error_body, json_response, ws_of

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

STATIC = Path(__file__).parent / "static"
COOKIE = "mltrain_ui_"  # + the dashboard's port
MAX_PATH = 2048
MAX_QUERY = 4096
MAX_HEADERS = 16 * 1024  # of header names and values; the whole head is bounded by the guard of uvicorn_config
PAGES = ("/", "/runs/{run_id}", "/compare", "/models", "/models/{name}", "/models/{name}/{version}", "/endpoints",
         "/endpoints/{name}", "/environments", "/data", "/data/{name}", "/data/{name}/{version}")  # fmt: skip
SOFT_404 = "x-soft-not-found"  # a page's request: "not found" comes as 200 {"error", "hint", "not_found": true}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class UiSettings:
    """How the dashboard serves: who may read, who may write."""

    token: str | None = None  # required for writes; for reads too when read_token is set
    allow_write: bool = False
    read_token: bool = False  # every request needs the token (non-loopback addresses)
    hosts: tuple[str, ...] = field(default_factory=tuple)  # Host header names accepted; empty: any
    poll_interval: float = 1.0  # seconds between database polls of a live stream
    max_streams: int = 32
    endpoint_hosts: tuple[str, ...] = ()  # hosts besides loopback addresses that may get an endpoint's key


def _token_ok(settings: UiSettings, given: str | None) -> bool:
    return bool(settings.token and given) and hmac.compare_digest(str(given).encode(), str(settings.token).encode())


def read_credential(token: str) -> str:
    """What the read cookie holds: derived from the token, never the token itself."""
    return hmac.new(token.encode(), b"mltrain ui: read cookie", hashlib.sha256).hexdigest()


def _cookie_ok(settings: UiSettings, given: str | None) -> bool:
    return bool(settings.token and given) and hmac.compare_digest(
        str(given).encode(), read_credential(str(settings.token)).encode()
    )


def cookie_name(scope: Scope) -> str:
    """The read cookie's name: it carries the dashboard's port, so dashboards on one host keep theirs."""
    server = scope.get("server") or ("", 0)
    return f"{COOKIE}{server[1]}"


def _host_name(host: str) -> str:
    """``name`` of a Host header ``name[:port]`` (``[v6]`` kept in brackets)."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0]


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization") or ""
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


class Guard:
    """ASGI middleware: size bounds, Host check and read authentication (see the module doc)."""

    def __init__(self, app: ASGIApp, settings: UiSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._check(request)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check(self, request: Request) -> Response | None:
        s = self.settings
        if len(request.url.path) > MAX_PATH or len(request.scope.get("query_string", b"")) > MAX_QUERY:
            return error_body(414, "the request URL is too long")
        if sum(len(k) + len(v) for k, v in request.scope["headers"]) > MAX_HEADERS:
            return error_body(431, "the request headers are too large")
        if s.hosts and _host_name(request.headers.get("host") or "") not in s.hosts:
            return error_body(
                400, "unexpected Host header", hint="open the dashboard at the address mltrain ui printed"
            )
        if not s.read_token:
            return None
        if request.url.path.startswith("/static/") or request.url.path == "/favicon.svg":
            return None
        if _token_ok(s, _bearer(request)) or _cookie_ok(s, request.cookies.get(cookie_name(request.scope))):
            return None
        given = request.query_params.get("token")
        if given is not None and _token_ok(s, given) and request.method == "GET":
            # a page opened with ?token=T: remember it in a cookie, drop it from the address bar
            from urllib.parse import urlencode

            query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            path = "/" + request.url.path.lstrip("/")  # never //host: a redirect stays on this server
            response = RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(cookie_name(request.scope), read_credential(given), httponly=True, samesite="strict")
            return response
        return error_body(
            401,
            "this dashboard needs its token",
            hint="open the URL mltrain ui printed (with ?token=...) or send Authorization: Bearer TOKEN",
        )


def require_write(request: Request) -> None:
    """403 unless writes are allowed; 401 unless the request carries the token."""
    s: UiSettings = request.app.state.settings
    if not s.allow_write:
        raise ApiError(403, "this dashboard is read-only", hint="start it with `mltrain ui --allow-write`")
    if not _token_ok(s, _bearer(request)):
        raise ApiError(
            401,
            "write actions need the dashboard's token",
            hint="send Authorization: Bearer TOKEN (the token mltrain ui printed)",
        )


def writer(handler: Any) -> Any:
    async def guarded(request: Request) -> Response:
        require_write(request)
        return await handler(request)  # type: ignore[no-any-return]

    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    guarded.needs_token = True  # type: ignore[attr-defined]
    return guarded


def page(_request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


def favicon(_request: Request) -> Response:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


def info(request: Request) -> Response:
    """The dashboard: mltrain version, workspace, database (password hidden), whether writes are allowed."""
    from mltrain import __version__

    s: UiSettings = request.app.state.settings
    ws = ws_of(request)
    return json_response(
        {
            "version": __version__,
            "workspace": str(ws.root),
            "database": ws.db.safe_url,
            "allow_write": s.allow_write,
            "read_token": s.read_token,
        }
    )


def openapi(request: Request) -> Response:
    """This OpenAPI 3.1 document."""
    from mltrain.ui.openapi import document

    return json_response(document(request.app.routes))


def api_not_found(request: Request) -> Response:
    """404 for any other API path."""
    raise ApiError(404, f"no API route {request.url.path[:200]!r}", hint="GET /api/openapi.json lists the routes")


API = [
    Route("/api/openapi.json", openapi),
    Route("/api/info", info),
    Route("/api/experiments", runs.experiments),
    Route("/api/columns", runs.columns),
    Route("/api/runs", runs.list_runs),
    Route("/api/runs/{run_id}", runs.get_run),
    Route("/api/runs/{run_id}/series", runs.series),
    Route("/api/runs/{run_id}/log", runs.log),
    Route("/api/runs/{run_id}/events", run_events),
    Route("/api/runs/{run_id}/artifacts/{path:path}", artifacts.artifact),
    Route("/api/runs/{run_id}/preview", artifacts.preview),
    Route("/api/runs/{run_id}/cancel", writer(runs.cancel), methods=["POST"]),
    Route("/api/sweeps/{run_id}", compare.sweep),
    Route("/api/compare", compare.compare),
    Route("/api/compare/series", compare.compare_series),
    Route("/api/models", models.list_models),
    Route("/api/models/{name}", models.get_model),
    Route("/api/models/{name}/versions/{version:int}", models.get_version),
    Route("/api/models/{name}/aliases", writer(models.set_alias), methods=["POST"]),
    Route("/api/models/{name}/aliases/{alias}", writer(models.remove_alias), methods=["DELETE"]),
    Route("/api/models/{name}/versions/{version:int}/archive", writer(models.archive), methods=["POST"]),
    Route("/api/endpoints", endpoints.list_endpoints),
    Route("/api/endpoints/{name}", endpoints.get_endpoint),
    Route("/api/endpoints/{name}/metrics", endpoints.endpoint_metrics),
    Route("/api/endpoints/{name}/logs", endpoints.endpoint_logs),
    Route("/api/endpoints/{name}/score", endpoints.endpoint_score, methods=["POST"]),
    Route("/api/environments", environments.list_environments),
    Route("/api/data", data.list_data),
    Route("/api/data/{name}", data.get_data),
    Route("/api/data/{name}/versions/{version:int}", data.get_data_version),
    Route("/api/{rest:path}", api_not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
]


def _error(request: Request, status: int, message: str, hint: str | None = None) -> Response:
    """The JSON error; a 404 as a 200 marked ``not_found`` when a page asked so (header SOFT_404), since
    a browser logs every 4xx answer as an error in its console."""
    if status == 404 and request.headers.get(SOFT_404) == "1":
        return json_response({"error": message, "hint": hint, "not_found": True})
    return error_body(status, message, hint)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(request, exc.status, exc.message, exc.hint)


async def _mltrain_error(request: Request, exc: Exception) -> Response:
    from mltrain.errors import MltrainError, NotFoundError

    assert isinstance(exc, MltrainError)
    return _error(request, 404 if isinstance(exc, NotFoundError) else 400, exc.message, exc.hint)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_body(exc.status_code, str(exc.detail))


async def _internal_error(_request: Request, _exc: Exception) -> Response:
    return error_body(500, "internal error of the dashboard", hint="the traceback is in the output of mltrain ui")


def create_app(ws: Workspace, settings: UiSettings) -> ASGIApp:
    """The dashboard over ``ws``."""
    from mltrain.errors import MltrainError

    routes = [
        *API,
        *(Route(p, page) for p in PAGES),
        Route("/favicon.svg", favicon),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            MltrainError: _mltrain_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.ws = ws
    app.state.settings = settings
    app.state.poll_interval = settings.poll_interval
    app.state.max_streams = settings.max_streams
    app.state.streams = 0

    async def headers(scope: Scope, receive: Receive, send: Send) -> None:
        started, cpu = time.perf_counter(), time.process_time()

        async def send_with(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                # the app's time and the process's CPU time meanwhile (of this request alone when
                # requests come one at a time, as a benchmark sends them: steady on a loaded machine)
                took = (
                    f"app;dur={(time.perf_counter() - started) * 1000:.1f}, "
                    f"cpu;dur={(time.process_time() - cpu) * 1000:.1f}"
                ).encode()
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"server-timing", took),
                ]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", CSP.encode()))
                if b"cache-control" not in names:  # revalidate: pages and scripts change with mltrain
                    extra.append((b"cache-control", b"no-cache"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await app(scope, receive, send_with if scope["type"] == "http" else send)

    return Guard(headers, settings)
