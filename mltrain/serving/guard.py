"""Limits on every connection of a worker, enforced in uvicorn's HTTP protocol (httptools).

- a request head (request line + headers) larger than ``max_header_bytes`` gets a 431 and the connection
  is closed, so an unfinished huge header costs at most that much memory;
- a head must arrive within ``header_timeout_s`` of the connection opening (or of the previous response),
  a body within ``body_timeout_s`` of its head, else the connection is closed (408 when a head was started):
  a slowloris client cannot keep a connection by trickling bytes;
- idle keep-alive connections close after ``timeout_keep_alive_s`` (uvicorn's own timer);
- past ``max_connections`` open connections, the one that has waited longest for a request head is closed
  (first those that never completed a request, then those answered while their request body still
  arrives, then idle keep-alive ones); when every connection is busy with a request, the new one gets a
  503. Connections whose request is being served are never shed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 32 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 1024


def raw_response(status: int, message: str) -> bytes:
    """A complete JSON error response that closes the connection (written outside any ASGI cycle)."""
    body = b'{"error":"' + message.replace('"', "'").encode("ascii", "replace") + b'"}'
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body),
            body,
        ]
    )


def guarded_protocol(limits: Limits) -> type:
    """uvicorn's httptools protocol class with ``limits`` enforced (one class per worker process)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    # connections waiting for a request head, oldest first: never served yet / idle after a response;
    # and those answered early whose request body still arrives (nothing waits for it)
    fresh: OrderedDict[Any, None] = OrderedDict()
    draining: OrderedDict[Any, None] = OrderedDict()
    idle: OrderedDict[Any, None] = OrderedDict()
    queues = (fresh, draining, idle)  # the order connections are shed in
    too_large = raw_response(
        431, f"the request head is larger than {limits.max_header_bytes} bytes: send fewer or shorter headers"
    )
    too_slow = raw_response(408, f"the request head did not arrive within {limits.header_timeout_s:g} s")
    busy = raw_response(503, "too many connections: retry shortly")

    class GuardedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc]
        _timer: asyncio.TimerHandle | None = None
        _head_bytes = 0
        _in_head = True

        # -- connection ------------------------------------------------------------------------
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._in_head = True
            self._head_bytes = 0
            self._wait_for_head(fresh)
            if len(self.connections) > limits.max_connections:
                self._shed()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            self._dequeue()
            super().connection_lost(exc)

        def _dequeue(self) -> None:
            for queue in queues:
                queue.pop(self, None)

        def _shed(self) -> None:
            for queue in queues:
                for proto in queue:
                    if proto is not self:
                        proto._close()
                        return
            self._close(busy)

        def _close(self, response: bytes | None = None) -> None:
            self._disarm()
            self._dequeue()
            if not self.transport.is_closing():
                if response:
                    self.transport.write(response)
                self.transport.close()

        # -- timers ----------------------------------------------------------------------------
        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _wait_for_head(self, queue: OrderedDict[Any, None]) -> None:
            self._disarm()
            self._dequeue()
            queue[self] = None
            self._timer = self.loop.call_later(limits.header_timeout_s, self._head_timeout)

        def _head_timeout(self) -> None:
            self._timer = None
            self._close(too_slow if self._head_bytes else None)

        def _body_timeout(self) -> None:
            self._timer = None
            self._close()

        # -- parsing ---------------------------------------------------------------------------
        def data_received(self, data: bytes) -> None:
            if not self._in_head:
                super().data_received(data)
                return
            room = limits.max_header_bytes - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
                super().data_received(data)
                return
            self._head_bytes = limits.max_header_bytes
            super().data_received(data[:room])  # the head must end within the limit
            if self._in_head and self._head_bytes == limits.max_header_bytes:
                self._close(too_large)
            elif not self.transport.is_closing():
                self.data_received(data[room:])  # the body, or the next request's head (counted again)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._dequeue()
            self._disarm()
            self._timer = self.loop.call_later(limits.body_timeout_s, self._body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            self._in_head = True  # bytes from here on belong to the next request's head
            self._head_bytes = 0
            super().on_message_complete()
            if self.cycle is not None and self.cycle.response_complete:  # answered before the body ended
                self._wait_for_head(idle)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.transport is None or self.transport.is_closing():
                return
            if self._in_head:
                self._wait_for_head(idle)
            else:  # answered before its body arrived: sheddable (its body timer still runs)
                draining[self] = None

    return GuardedHttpToolsProtocol
