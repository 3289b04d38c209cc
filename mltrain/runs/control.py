"""Cancellation of this process's runs by SIGINT/SIGTERM.

The first signal stops every started job gracefully and keeps runs that have not started from
starting; the second kills the jobs at once. A run that is storing its results is not interrupted.
There is one ``RunControl`` per process: the owner of the main thread installs the handlers — the
driver of a single run, or a sweep launcher around all of its runs (drivers then run in threads and
only register their jobs).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltrain.compute.base import RunHandle


class RunCanceled(Exception):
    """A cancel arrived before the run's job started."""


@dataclass
class RunSlot:
    """One run of this process, as the control sees it."""

    thread: int
    handle: RunHandle | None = None
    finishing: bool = False


class RunControl:
    _instance: RunControl | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: list[RunSlot] = []
        self._installed = False
        self._count = 0
        self.reason: str | None = None

    @classmethod
    def current(cls) -> RunControl:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @contextmanager
    def signals(self) -> Iterator[RunControl]:
        """Handle SIGINT/SIGTERM while inside (no-op off the main thread or when already installed)."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        self._installed = True
        try:
            yield self
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self._installed = False

    @contextmanager
    def tracking(self) -> Iterator[RunSlot]:
        """Register a run of the calling thread for the duration of the block."""
        slot = RunSlot(threading.get_ident())
        with self._lock:
            self._slots.append(slot)
        try:
            yield slot
        finally:
            with self._lock:
                self._slots.remove(slot)

    def check(self) -> None:
        """Raise RunCanceled when a cancel has arrived (call before starting a job)."""
        if self.reason:
            raise RunCanceled(self.reason)

    def started(self, slot: RunSlot, handle: RunHandle) -> None:
        """The job of ``slot`` runs; a cancel that arrived meanwhile applies to it at once."""
        slot.handle = handle
        if self.reason:
            handle.cancel(self.reason)

    def cancel_thread(self, thread: int, reason: str) -> bool:
        """Cancel the started job of the run that ``thread`` drives (e.g. a sweep trial stopped early);
        False when it has no started job (yet)."""
        with self._lock:
            slots = [s for s in self._slots if s.thread == thread and s.handle is not None and not s.finishing]
        for slot in slots:
            assert slot.handle is not None
            slot.handle.cancel(reason)
        return bool(slots)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._count += 1
        self.reason = self.reason or f"canceled by {signal.Signals(signum).name}"
        with self._lock:
            slots = list(self._slots)
        running = [s for s in slots if s.handle is not None and not s.finishing]
        for slot in running:
            assert slot.handle is not None
            slot.handle.cancel(self.reason, force=self._count > 1)
        if running and self._count == 1:
            print("\n[mltrain] stopping (press Ctrl-C again to kill at once)", file=sys.stderr)
        elif slots and all(s.finishing for s in slots):
            print("\n[mltrain] the run is finishing; its files are being stored", file=sys.stderr)
        me = threading.get_ident()
        if any(s.thread == me and s.handle is None and not s.finishing for s in slots):
            raise RunCanceled(self.reason)  # the main thread is preparing a run: stop that at once
