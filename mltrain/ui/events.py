"""Server-sent events of one run: new metric points, new log text and status changes while it runs.

Each stream polls the database once per interval (whatever the number of charts on the page) and
ends after the run has ended and its last points and log lines were sent. At most ``max_streams`` are
open at once: a stream takes its slot when its response starts and gives it back when it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from mltrain.ui.api_runs import LOG_CHUNK, MAX_LOG_OFFSET
from mltrain.ui.params import error_body, integer, run_of, ws_of

MAX_POINTS = 20_000  # per event; more arrive in the next one
KEEPALIVE_S = 15.0


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n\n"


def _poll(request: Request, run_id: str, after: int, offset: int) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    from mltrain.runs.output import STD_LOG
    from mltrain.workspace.run_files import read_run_file

    ws = ws_of(request)
    run = ws.runs.get(run_id)
    points = ws.metrics.numeric_series(run_id, after, MAX_POINTS)
    log = read_run_file(ws, run, STD_LOG, offset, LOG_CHUNK)
    return run, points, log


async def run_events(request: Request) -> Response:
    """``GET /api/runs/{id}/events?after=METRIC_ID&offset=LOG_BYTES``: a ``text/event-stream`` of
    ``metrics`` ({"last_id", "series": {key: {id, step, ts, value}}}), ``log`` ({"offset", "next_offset",
    "text"}), ``status`` ({"status"}) and a final ``end``."""
    from starlette.concurrency import run_in_threadpool

    from mltrain.workspace.runs import TERMINAL

    state = request.app.state
    run = await run_in_threadpool(run_of, request)
    after = integer(request, "after", 0, 0, 2**62)
    offset = integer(request, "offset", 0, 0, MAX_LOG_OFFSET)

    async def stream() -> AsyncIterator[bytes]:
        import time

        import anyio

        nonlocal after, offset
        status = None
        quiet_since = time.monotonic()
        yield b"retry: 3000\n\n"
        while not await request.is_disconnected():
            rec, points, log = await run_in_threadpool(_poll, request, run["id"], after, offset)
            if rec["status"] != status:
                status = rec["status"]
                yield _event("status", {"status": status, "ended_at": rec["ended_at"]})
            if points["count"]:
                after = points["last_id"]
                yield _event("metrics", {"last_id": after, "series": points["series"]})
            if log:
                text = log.decode("utf-8", "replace")
                yield _event("log", {"offset": offset, "next_offset": offset + len(log), "text": text})
                offset += len(log)
            if points["count"] or log:
                quiet_since = time.monotonic()
                if points["count"] >= MAX_POINTS or len(log) >= LOG_CHUNK:
                    continue  # more is waiting: no sleep
            elif status in TERMINAL:
                yield _event("end", {"status": status})
                return
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await anyio.sleep(state.poll_interval)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return SlottedStream(stream(), media_type="text/event-stream", headers=headers)


class SlottedStream(StreamingResponse):
    """A stream that holds one of the app's ``max_streams`` slots while it is sent; with none free, a 429.
    Taking a slot is a check and an increment with no ``await`` between them, so it is atomic in the
    event loop however many requests arrive at once."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        if state.streams >= state.max_streams:
            busy = error_body(
                429, f"too many live streams open ({state.max_streams})", hint="close other dashboard tabs"
            )
            await busy(scope, receive, send)
            return
        state.streams += 1
        try:
            await super().__call__(scope, receive, send)
        finally:
            state.streams -= 1
