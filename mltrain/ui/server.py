"""Serving the dashboard with uvicorn: address and token rules, bounded requests."""

from __future__ import annotations

import ipaddress
import secrets
from typing import TYPE_CHECKING, Any

from mltrain.errors import MltrainError

if TYPE_CHECKING:
    from mltrain.ui.app import UiSettings
    from mltrain.workspace import Workspace


class UiError(MltrainError):
    """The dashboard cannot start as asked."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ui_settings(host: str, token: str | None, allow_write: bool, poll_interval: float = 1.0) -> tuple[UiSettings, bool]:
    """The settings for serving on ``host``, and whether the token was generated here (to be shown).

    Any address other than loopback needs ``token`` (then every request needs it); ``--allow-write``
    without a token gets a generated one, since writes always need it."""
    from mltrain.ui.app import LOOPBACK_NAMES, UiSettings

    loopback = is_loopback(host)
    if not loopback and not token:
        raise UiError(
            f"serving the dashboard on {host} (not a loopback address) needs a token",
            hint="add --token T (at least 16 characters), or serve on 127.0.0.1",
        )
    if token is not None and (len(token) < 16 or not token.isprintable() or " " in token):
        raise UiError(
            "the token must be at least 16 printable characters without spaces",
            hint="e.g. --token $(openssl rand -hex 16)",
        )
    generated = False
    if allow_write and not token:
        token, generated = secrets.token_urlsafe(24), True
    hosts = tuple(sorted({*LOOPBACK_NAMES, host})) if loopback else ()
    return UiSettings(
        token=token, allow_write=allow_write, read_token=not loopback, hosts=hosts, poll_interval=poll_interval
    ), generated


def uvicorn_config(app: Any, host: str, port: int) -> Any:
    """A uvicorn config with bounded headers, connections and keep-alive."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http="h11",  # h11 enforces the header size limit below (httptools takes any size)
        limit_concurrency=128,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=2,
        h11_max_incomplete_event_size=16 * 1024,
        server_header=False,
        proxy_headers=False,
    )


def bind(host: str, port: int) -> Any:
    """A listening TCP socket on ``host:port`` (port 0: a free one); UiError naming the cause."""
    import socket

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UiError(
            f"cannot listen on {host}:{port}: {exc.strerror}", hint="pick another --port (0: any free one)"
        ) from None
    sock.listen(128)
    return sock


def url_of(host: str, port: int, settings: UiSettings) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    return url + f"?token={settings.token}" if settings.read_token else url


def serve(ws: Workspace, settings: UiSettings, host: str, port: int, announce: Any = print) -> None:
    """Serve until interrupted; ``announce`` gets the dashboard's URL once it listens."""
    import uvicorn

    from mltrain.ui.app import create_app

    sock = bind(host, port)
    config = uvicorn_config(create_app(ws, settings), host, sock.getsockname()[1])
    announce(url_of(host, sock.getsockname()[1], settings))
    uvicorn.Server(config).run(sockets=[sock])
