"""One worker process: load the model, then serve the supervisor's listening socket with uvicorn.

Started by the supervisor as ``python -m mltrain.serving.worker NAME INDEX`` with its instructions in the
environment variable ``MLTRAIN_SERVING_WORKER`` (JSON: config, index, slots, workers, parent, and the file
descriptors of the listening socket, the metrics block and the ready pipe). It writes ``ready`` to the
pipe once it can score, or ``error:<message>`` and exits 2 when the model is refused.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import Any

from mltrain.serving.errors import ServingError

ENV = "MLTRAIN_SERVING_WORKER"


def _die_with_parent(parent: int) -> None:
    """Ask Linux to send SIGTERM when the supervisor dies, so no worker outlives it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != parent:
        sys.exit(0)


def _http_protocol(cfg: Any) -> Any:
    """uvicorn's httptools protocol with the connection limits of :mod:`mltrain.serving.guard`."""
    from mltrain.serving.guard import Limits, guarded_protocol

    limits = Limits(cfg.max_header_bytes, cfg.header_timeout_s, cfg.body_timeout_s, cfg.max_connections)
    return guarded_protocol(limits)


def _raise_open_files_limit(wanted: int) -> None:
    """Allow ``wanted`` open files (up to the hard limit), so max_connections sockets fit."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):
        pass


def _uvicorn_config(app: Any, cfg: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        loop="auto",  # uvloop when installed
        http=_http_protocol(cfg),  # httptools, with header size, read times and connections bounded
        ws="none",
        lifespan="off",
        interface="asgi3",
        proxy_headers=False,
        server_header=False,
        access_log=cfg.access_log,
        log_level=cfg.log_level,
        timeout_keep_alive=cfg.timeout_keep_alive_s,
        timeout_graceful_shutdown=max(1, round(cfg.graceful_timeout_s)),
    )


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """Tells the supervisor "ready" once uvicorn serves the socket (not merely once the model loaded)."""

        ready_fd: int | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and self.ready_fd is not None:
                os.write(self.ready_fd, b"ready")
                os.close(self.ready_fd)
                self.ready_fd = None

    return Server


def main() -> int:
    job = json.loads(os.environ.pop(ENV))
    _die_with_parent(job["parent"])
    from mltrain.serving.logs import setup_logging

    log = setup_logging(f"worker {job['index']}")
    ready_fd = job["ready_fd"]
    try:
        from mltrain.serving.app import build_app
        from mltrain.serving.config import parse_config
        from mltrain.serving.metrics import Metrics

        cfg = parse_config(job["config"])
        metrics = Metrics(slots=job["slots"], slot=job["index"], fd=job["metrics_fd"])
        app = build_app(cfg, metrics, workers=job["workers"])
    except ServingError as exc:
        os.write(ready_fd, f"error:{exc}".encode())
        return exc.exit_code
    _raise_open_files_limit(cfg.max_connections + 256)
    server = _server_class()(_uvicorn_config(app, cfg))
    server.ready_fd = ready_fd
    server.run(sockets=[socket.socket(fileno=job["listen_fd"])])
    log.debug("worker %d stopped", job["index"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
