"""Adaptive micro-batching: requests that are ready in the same event-loop turn share one model call.

A request submits its validated matrix and awaits a future; the first submission of a turn schedules a
flush with ``call_soon``, so the flush runs after every request parsed in that turn. Under no load a
batch holds one request (cost: one extra loop turn); under load, concurrent requests are stacked, scored
in one call, and the output rows are split back. scikit-learn estimators score rows independently, so
results are the same as one call per request (up to floating-point summation order in BLAS-backed
models). A batch that raises, or whose output is not one row per input row, is re-scored request by
request so each request gets its own result or error. Set ``batch_max_rows`` <= 1 to turn this off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from mltrain.serving.metrics import Metrics

_concatenate = np.concatenate
_ndarray = np.ndarray


class Batcher:
    def __init__(self, methods: dict[str, Callable[[Any], Any]], max_rows: int, metrics: Metrics) -> None:
        self.methods = methods
        self.max_rows = max_rows
        self.metrics = metrics
        self._pending: dict[str, list[tuple[np.ndarray, asyncio.Future[Any]]]] = {}
        self._scheduled = False

    def submit(self, method: str, X: np.ndarray) -> asyncio.Future[Any]:
        """A future of ``method``'s output for the rows ``X``."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        items = self._pending.get(method)
        if items is None:
            self._pending[method] = items = []
        items.append((X, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for method, items in pending.items():
            fn = self.methods[method]
            chunk: list[tuple[np.ndarray, asyncio.Future[Any]]] = []
            rows = 0
            for item in items:
                n = item[0].shape[0]
                if chunk and rows + n > self.max_rows:
                    self._run(method, fn, chunk, rows)
                    chunk, rows = [], 0
                chunk.append(item)
                rows += n
            self._run(method, fn, chunk, rows)

    def _run_one(self, method: str, fn: Callable[[Any], Any], X: np.ndarray, fut: asyncio.Future[Any]) -> None:
        try:
            out = fn(X)
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)
        else:
            if not fut.done():
                fut.set_result(out)
        self.metrics.predicted(method, X.shape[0])

    def _run(
        self, method: str, fn: Callable[[Any], Any], chunk: list[tuple[np.ndarray, asyncio.Future[Any]]], rows: int
    ) -> None:
        if len(chunk) == 1:
            self._run_one(method, fn, *chunk[0])
            return
        try:
            out = fn(_concatenate([x for x, _ in chunk]))
            ok = type(out) is _ndarray and out.ndim >= 1 and out.shape[0] == rows
        except Exception:
            ok = False
        if not ok:  # attribute errors (or odd outputs) to the requests that cause them
            for X, fut in chunk:
                self._run_one(method, fn, X, fut)
            return
        self.metrics.predicted(method, rows)
        start = 0
        for X, fut in chunk:
            end = start + X.shape[0]
            if not fut.done():
                fut.set_result(out[start:end])
            start = end
