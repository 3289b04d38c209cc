"""Talking to a server over HTTP on loopback: readiness after a start, health when listing."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mltrain.errors import DeployError

POLL_S = 0.1


def http_get(uri: str, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``uri + path``; (status, body), or (0, b"") when nothing answers."""
    parts = urlsplit(uri)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


def is_ready(uri: str | None, timeout: float = 3.0) -> bool:
    return bool(uri) and http_get(str(uri), "/health/ready", timeout)[0] == 200


def wait_until_ready(
    name: str,
    ready_file: Path,
    exited: Callable[[], str | None],
    tail: Callable[[], str],
    timeout_s: float,
) -> dict[str, Any]:
    """Wait for the server to write ``ready_file`` and answer 200 on ``/health/ready``; return the
    ready file's content ({"pid", "port", "url"}). DeployError with the end of the server's output
    when it exits first or is not ready within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    info: dict[str, Any] | None = None
    while True:
        if info is None and ready_file.is_file():
            try:
                info = json.loads(ready_file.read_text())
            except (OSError, ValueError):
                info = None  # written atomically; an unreadable file is retried
        if info is not None and is_ready(info.get("url")):
            return info
        why = exited()
        if why is not None:
            raise DeployError(
                f"the server of endpoint {name} stopped before it was ready ({why}); the end of its output:\n"
                + _indent(tail()),
                hint=f"fix the cause above, then deploy again (`mltrain endpoints logs {name}` has the whole log)",
            )
        if time.monotonic() > deadline:
            raise DeployError(
                f"the server of endpoint {name} was not ready within {timeout_s:g} s; the end of its output:\n"
                + _indent(tail()),
                hint="a busy machine may need more time: raise the deploy option ready_timeout_s",
            )
        time.sleep(POLL_S)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in (text.strip() or "(no output)").splitlines())
