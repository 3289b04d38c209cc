"""Prometheus metrics, aggregated over all worker processes through one shared memory block.

The supervisor creates the block (an anonymous memfd passed to each worker); worker ``i`` adds to slot
``i`` only, the supervisor to the last slot, and ``GET /metrics`` on any worker sums every slot, so the
numbers cover the whole server. A restarted worker continues its slot, so counters never go back.
Updates are plain float64 stores into the worker's own slot (no locks, no syscalls).
"""

from __future__ import annotations

import mmap
import os
from bisect import bisect_left

PATHS = ("/score", "/metrics", "/swagger.json", "/health/live", "/health/ready", "other")
PATH_INDEX = {p: i for i, p in enumerate(PATHS)}
OTHER_PATH = len(PATHS) - 1
STATUSES = (200, 400, 401, 404, 405, 413, 415, 422, 500, 503, 0)  # 0 = any other status
STATUS_INDEX = {s: i for i, s in enumerate(STATUSES)}
OTHER_STATUS = len(STATUSES) - 1
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = ("predict", "predict_proba", "decision_function")
METHOD_INDEX = {m: i for i, m in enumerate(METHODS)}
RESTART_REASONS = ("memory", "exit")
ERROR_KINDS = {
    400: "bad_request",
    404: "bad_request",
    405: "bad_request",
    413: "bad_request",
    415: "bad_request",
    401: "unauthorized",
    422: "model",
    500: "internal",
    503: "internal",
}

_NP, _NS, _NB = len(PATHS), len(STATUSES), len(BUCKETS) + 1
REQ = 0
HIST = REQ + _NP * _NS
SUM = HIST + _NP * _NB
ROWS = SUM + _NP
CALLS = ROWS + len(METHODS)
RESTARTS = CALLS + len(METHODS)
SLOT = RESTARTS + len(RESTART_REASONS)
DOUBLE = 8


def block_size(slots: int) -> int:
    return slots * SLOT * DOUBLE


def create_shared_block(slots: int) -> int:
    """An anonymous shared file descriptor sized for ``slots`` slots (inheritable by child processes)."""
    size = block_size(slots)
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("mltrain-serving-metrics", 0)
    else:  # pragma: no cover - non-Linux
        import tempfile

        fd, path = tempfile.mkstemp(prefix="mltrain-serving-metrics-")
        os.unlink(path)
    os.ftruncate(fd, size)
    return fd


class Metrics:
    """One process's view of the block: writes go to ``slot``; :meth:`render` reads every slot."""

    def __init__(self, slots: int = 2, slot: int = 0, fd: int | None = None) -> None:
        self.slots = slots
        self.slot = slot
        size = block_size(slots)
        self._mem: mmap.mmap | bytearray = mmap.mmap(fd, size) if fd is not None else bytearray(size)
        self.buf = memoryview(self._mem).cast("d")
        self.base = slot * SLOT

    def observe(self, path_index: int, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        buf, base = self.buf, self.base
        buf[base + REQ + path_index * _NS + STATUS_INDEX.get(status, OTHER_STATUS)] += 1.0
        buf[base + HIST + path_index * _NB + bisect_left(BUCKETS, seconds)] += 1.0
        buf[base + SUM + path_index] += seconds

    def predicted(self, method: str, rows: int, calls: int = 1) -> None:
        i = METHOD_INDEX[method]
        self.buf[self.base + ROWS + i] += rows
        self.buf[self.base + CALLS + i] += calls

    def restarted(self, reason: str) -> None:
        self.buf[self.base + RESTARTS + RESTART_REASONS.index(reason)] += 1.0

    def totals(self) -> list[float]:
        """Every counter summed over all slots."""
        buf = self.buf
        out = [0.0] * SLOT
        for s in range(self.slots):
            base = s * SLOT
            for k in range(SLOT):
                out[k] += buf[base + k]
        return out

    def render(self, labels: dict[str, str], workers: int) -> bytes:
        """Prometheus text exposition format 0.0.4."""
        t = self.totals()
        lines: list[str] = []
        add = lines.append
        add("# HELP mltrain_model_info The model this endpoint serves.")
        add("# TYPE mltrain_model_info gauge")
        add(f"mltrain_model_info{{{_labels(labels)}}} 1")
        add("# HELP mltrain_workers Worker processes serving this endpoint.")
        add("# TYPE mltrain_workers gauge")
        add(f"mltrain_workers {workers}")
        add("# HELP mltrain_requests_total HTTP requests by path and status (all workers).")
        add("# TYPE mltrain_requests_total counter")
        errors: dict[str, float] = {}
        for p, path in enumerate(PATHS):
            for s, status in enumerate(STATUSES):
                n = t[REQ + p * _NS + s]
                if n:
                    add(f'mltrain_requests_total{{path="{path}",status="{status or "other"}"}} {_num(n)}')
                    if status >= 400 or status == 0:
                        kind = ERROR_KINDS.get(status, "other")
                        errors[kind] = errors.get(kind, 0.0) + n
        add("# HELP mltrain_errors_total Requests answered with an error, by kind.")
        add("# TYPE mltrain_errors_total counter")
        for kind in ("bad_request", "unauthorized", "model", "internal", "other"):
            add(f'mltrain_errors_total{{kind="{kind}"}} {_num(errors.get(kind, 0.0))}')
        add("# HELP mltrain_request_duration_seconds Time from request start to response sent.")
        add("# TYPE mltrain_request_duration_seconds histogram")
        for p, path in enumerate(PATHS):
            counts = t[HIST + p * _NB : HIST + (p + 1) * _NB]
            total = sum(counts)
            if not total:
                continue
            running = 0.0
            for bound, n in zip(BUCKETS, counts[:-1], strict=True):
                running += n
                add(f'mltrain_request_duration_seconds_bucket{{path="{path}",le="{bound}"}} {_num(running)}')
            add(f'mltrain_request_duration_seconds_bucket{{path="{path}",le="+Inf"}} {_num(total)}')
            add(f'mltrain_request_duration_seconds_sum{{path="{path}"}} {t[SUM + p]!r}')
            add(f'mltrain_request_duration_seconds_count{{path="{path}"}} {_num(total)}')
        add("# HELP mltrain_predictions_total Rows scored, by method.")
        add("# TYPE mltrain_predictions_total counter")
        for i, method in enumerate(METHODS):
            add(f'mltrain_predictions_total{{method="{method}"}} {_num(t[ROWS + i])}')
        add("# HELP mltrain_model_calls_total Model calls, by method (concurrent requests share a call).")
        add("# TYPE mltrain_model_calls_total counter")
        for i, method in enumerate(METHODS):
            add(f'mltrain_model_calls_total{{method="{method}"}} {_num(t[CALLS + i])}')
        add("# HELP mltrain_worker_restarts_total Workers restarted by the supervisor, by reason.")
        add("# TYPE mltrain_worker_restarts_total counter")
        for i, reason in enumerate(RESTART_REASONS):
            add(f'mltrain_worker_restarts_total{{reason="{reason}"}} {_num(t[RESTARTS + i])}')
        return ("\n".join(lines) + "\n").encode()


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
