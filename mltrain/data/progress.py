"""Progress of a long transfer: bytes and files done, reported at most once per interval."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Cancelled(Exception):
    """The transfer was stopped (another file of it failed, or the user interrupted it)."""


class Progress:
    """Counts bytes and files (from any thread) and calls ``report`` with itself now and then;
    once ``cancel`` is called, the next ``add`` raises :class:`Cancelled` in whichever thread calls it."""

    def __init__(
        self,
        total_bytes: int | None,
        total_files: int,
        report: Callable[[Progress], None] | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.bytes_done = 0
        self.files_done = 0
        self._report = report
        self._interval_s = interval_s
        self._next = time.monotonic() + interval_s
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def add(self, n: int) -> None:
        """``n`` more bytes moved."""
        if self._cancelled.is_set():
            raise Cancelled("stopped")
        with self._lock:
            self.bytes_done += n
        self._maybe_report()

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1
        self._maybe_report()

    def _maybe_report(self) -> None:
        if self._report is None or time.monotonic() < self._next:
            return
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                return
            self._next = now + self._interval_s
        self._report(self)
