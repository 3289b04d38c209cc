"""Serving the dashboard with uvicorn: address and token rules, bounded requests and connections."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import MltrainError
from mltrain.ui.params import is_loopback

if TYPE_CHECKING:
    from mltrain.ui.app import UiSettings
    from mltrain.workspace import Workspace


TOKEN_ENV = "MLTRAIN_UI_TOKEN"
MAX_CONNECTIONS = 256  # open connections; past it the one waiting longest for a request head is closed


class UiError(MltrainError):
    """The dashboard cannot start as asked."""


def find_token(token: str | None, token_file: str | None) -> str | None:
    """The token of ``--token``, else of ``--token-file`` (its first line), else of $MLTRAIN_UI_TOKEN,
    which is then removed from this process's environment (nothing started from here inherits it)."""
    if token is not None and token_file is not None:
        raise UiError("give --token or --token-file, not both", hint="--token-file keeps the token out of `ps`")
    from_env = os.environ.pop(TOKEN_ENV, None)
    if token is not None:
        return token
    if token_file is None:
        return from_env or None
    path = Path(token_file).expanduser()
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise UiError(f"cannot read the token file {path}: {reason}", hint="e.g. openssl rand -hex 16 > FILE") from None
    if not lines or not lines[0].strip():
        raise UiError(f"the token file {path} is empty", hint="write the token on its first line")
    return lines[0].strip()


def ui_settings(
    host: str, token: str | None, allow_write: bool, poll_interval: float = 1.0, endpoint_hosts: tuple[str, ...] = ()
) -> tuple[UiSettings, bool]:
    """The settings for serving on ``host``, and whether the token was generated here (to be shown).

    Any address other than loopback needs ``token`` (then every request needs it); ``--allow-write``
    without a token gets a generated one, since writes always need it. An endpoint's key is sent only
    to a loopback address or one of ``endpoint_hosts``."""
    from mltrain.ui.app import LOOPBACK_NAMES, UiSettings

    loopback = is_loopback(host)
    if not loopback and not token:
        raise UiError(
            f"serving the dashboard on {host} (not a loopback address) needs a token",
            hint=f"add --token-file FILE (or set {TOKEN_ENV}) with a token of at least 16 characters, "
            "or serve on 127.0.0.1",
        )
    if token is not None and (len(token) < 16 or not token.isprintable() or " " in token):
        raise UiError(
            "the token must be at least 16 printable characters without spaces",
            hint="e.g. openssl rand -hex 16 > FILE, then --token-file FILE",
        )
    generated = False
    if allow_write and not token:
        token, generated = secrets.token_urlsafe(24), True
    hosts = tuple(sorted({*LOOPBACK_NAMES, host})) if loopback else ()
    return UiSettings(
        token=token,
        allow_write=allow_write,
        read_token=not loopback,
        hosts=hosts,
        poll_interval=poll_interval,
        endpoint_hosts=tuple(h.strip("[]").lower() for h in endpoint_hosts),
    ), generated


def uvicorn_config(app: Any, host: str, port: int) -> Any:
    """A uvicorn config with the scoring server's connection guard (:mod:`mltrain.serving.guard`): a
    request head bounded in size and arrival time, idle keep-alive closed after 5 s, and past
    MAX_CONNECTIONS the connection waiting longest for a head closed, so idle or dripping connections
    cannot lock others out."""
    import uvicorn

    from mltrain.serving.guard import Limits, guarded_protocol

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http=guarded_protocol(Limits(max_connections=MAX_CONNECTIONS)),
        timeout_keep_alive=5,
        timeout_graceful_shutdown=2,
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
