"""Request parameters of the dashboard API: parsed and bounded, or a 4xx with a JSON error; the
workspace and the run a request names."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from mltrain.workspace import Workspace
    from mltrain.workspace.runs import RunInfo

RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")  # a model or endpoint name
MAX_PARAM_CHARS = 256
MAX_BODY_BYTES = 16 * 1024


class ApiError(Exception):
    """An error answered as ``{"error": message, "hint": hint}`` with ``status``."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``data`` as JSON (orjson: NaN and infinities become null)."""
    import orjson

    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_body(status: int, message: str, hint: str | None = None) -> Response:
    return json_response({"error": message, "hint": hint}, status)


def text(request: Request, name: str, default: str | None = None, max_chars: int = MAX_PARAM_CHARS) -> str | None:
    """A query parameter (empty means absent), at most ``max_chars`` long."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if len(value) > max_chars or "\x00" in value:
        raise ApiError(400, f"parameter {name!r} is too long or holds a NUL", hint=f"at most {max_chars} characters")
    return value


def integer(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within ``lo .. hi``."""
    raw = text(request, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"parameter {name!r} must be an integer, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"parameter {name!r} must be between {lo} and {hi}, got {value}")
    return value


def flag(request: Request, name: str) -> bool:
    raw = (text(request, name) or "0").lower()
    if raw not in ("0", "1", "true", "false"):
        raise ApiError(400, f"parameter {name!r} must be 0 or 1, got {raw[:40]!r}")
    return raw in ("1", "true")


def number(raw: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{what} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value):
        raise ApiError(400, f"{what} must be a finite number, got {raw[:40]!r}")
    return value


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body, at most MAX_BODY_BYTES."""
    import json

    if not (request.headers.get("content-type") or "").startswith("application/json"):
        raise ApiError(415, "the body must be JSON", hint="send Content-Type: application/json")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise ApiError(413, f"the body is over {MAX_BODY_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (``[::1]`` in brackets too); a name is not resolved."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ws_of(request: Request) -> Workspace:
    return request.app.state.ws  # type: ignore[no-any-return]


def name_param(request: Request) -> str:
    """The model or endpoint name of the path; 400 unless it is a valid name."""
    name = str(request.path_params["name"])
    if not NAME.match(name):
        raise ApiError(400, f"{name[:80]!r} is not a valid name", hint="letters, digits, '.', '_' and '-'")
    return name


def run_of(request: Request) -> RunInfo:
    """The run named by the path (full id or unique prefix); 400 for a malformed id, 404 if none."""
    run_id = request.path_params["run_id"]
    if not RUN_ID.match(run_id):
        raise ApiError(400, f"{run_id[:80]!r} is not a run id", hint="run ids are letters, digits, '_', '.', '-'")
    return ws_of(request).runs.get(run_id)
