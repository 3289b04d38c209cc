"""Ingest of the in-script API's records (``.mltrain/metrics.jsonl``) into the workspace.

Records are fed as raw bytes (from a local file, a remote tail, ...); partial lines wait for the
rest. A background thread stores them while the job runs, so a run that logs a million values
ends moments after its script: metrics go in large batches through the workspace's bulk path
(decoded by SQLite itself where it can), tags at once; model-registration requests are kept for
the driver, which registers them only after the run completes. A record may name the run's
parent (``"r"``: what a trial logs on ``run.parent``); any other run it names is ignored.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any

from mltrain.workspace.metrics import METRIC_KINDS, decode_lines

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

TYPED = b'"type":'  # only records of other kinds than scalars carry it
ROUTED = b'"r":'  # only records logged on another run (the parent) carry it


class MetricsIngest:
    """Decodes the metric records of one run and stores them, in a thread of its own."""

    def __init__(self, ws: Workspace, run_id: str, parent_run_id: str | None = None) -> None:
        self.ws = ws
        self.run_id = run_id
        self._parent = parent_run_id
        self._partial = b""
        self.register_requests: list[dict[str, Any]] = []
        self.stored = 0
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def feed(self, data: bytes, final: bool = False) -> int:
        """Queue ``data`` for storing; with ``final``, store what is left (a trailing partial
        record too) and wait until everything is stored. Returns how many records are stored."""
        if data:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="mltrain-ingest", daemon=True)
                self._thread.start()
            self._queue.put(data)
        if final:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None
            if self._partial:
                self._store(self._partial + b"\n")
                self._partial = b""
            if self._error is not None:
                error, self._error = self._error, None
                raise error
        return self.stored

    def _work(self) -> None:
        done = False
        while not done:
            chunks = [self._queue.get()]
            while len(chunks) < 64:  # take what has piled up: fewer, larger transactions
                try:
                    chunks.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if chunks[-1] is None:
                done = True
                chunks.pop()
            data = self._partial + b"".join(c for c in chunks if c)
            cut = data.rfind(b"\n") + 1
            self._partial = data[cut:]
            if cut and self._error is None:
                try:
                    self._store(data[:cut])
                except BaseException as exc:  # noqa: BLE001 - re-raised by feed(final=True)
                    self._error = exc

    @property
    def parent_run_id(self) -> str | None:
        """The run's parent (looked up once, when a record names a run)."""
        if self._parent is None:
            self._parent = self.ws.runs.get(self.run_id).get("parent_run_id") or ""
        return self._parent or None

    def _store(self, lines: bytes) -> None:
        parent = self.parent_run_id if ROUTED in lines else None
        if TYPED in lines:
            typed = [raw for raw in lines.split(b"\n") if TYPED in raw]
            self.register_requests += parse_records(typed)[2]
            for run_id, run_tags in _tags_by_run(typed, self.run_id, parent).items():
                self.ws.runs.set_tags(run_id, run_tags)
        self.stored += self.ws.metrics.add_jsonl(self.run_id, lines, parent)


def _tags_by_run(lines: list[bytes], run_id: str, parent_run_id: str | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for rec in decode_lines(lines):
        if isinstance(rec, dict) and rec.get("type") == "tags":
            target = parent_run_id if parent_run_id and rec.get("r") == parent_run_id else run_id
            out.setdefault(target, {}).update({str(k): str(v) for k, v in (rec.get("v") or {}).items()})
    return out


def parse_records(lines: list[bytes]) -> tuple[list[dict[str, Any]], dict[str, str], list[dict[str, Any]]]:
    """Split raw JSON lines into (metric records, tags, model-registration requests)."""
    metrics: list[dict[str, Any]] = []
    tags: dict[str, str] = {}
    registers: list[dict[str, Any]] = []
    for rec in decode_lines(lines):
        if not isinstance(rec, dict):
            continue
        kind = rec.get("type", "scalar")
        if kind in METRIC_KINDS:
            metrics.append(rec)
        elif kind == "tags":
            tags.update(rec.get("v") or {})
        elif kind == "register":
            registers.append(rec.get("v") or {})
    return metrics, tags, registers
