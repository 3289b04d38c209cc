"""The handles of local jobs: a process group started by this process (:class:`LocalHandle`), one
forked by a warm server (:class:`ForkedHandle`), one started by another process (:class:`AttachedLocalHandle`).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from typing import IO, TYPE_CHECKING

from mltrain.compute.base import JobRef, OutputSink, RunHandle, RunSpec
from mltrain.remote.procs import group_exists, hostname, signal_group, start_token, stop_group

if TYPE_CHECKING:
    from mltrain.remote.forkserver import ForkServer, ForkServerPool


def pump(stream: IO[bytes], name: str, sink: OutputSink) -> threading.Thread:
    """Copy ``stream`` to ``sink`` as it arrives (partial lines included) in a daemon thread."""

    def _run() -> None:
        read = getattr(stream, "read1", stream.read)
        try:
            while chunk := read(65536):
                sink.write(chunk, name)
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=_run, name=f"mltrain-{name}", daemon=True)
    thread.start()
    return thread


def local_ref(pgid: int) -> JobRef:
    return {"kind": "local", "host": hostname(), "pgid": pgid, "start": start_token(pgid)}


class LocalHandle(RunHandle):
    def __init__(self, spec: RunSpec, proc: subprocess.Popen[bytes], sink: OutputSink, grace_s: float) -> None:
        super().__init__(spec)
        self.proc = proc
        self._ref = local_ref(proc.pid)
        self.grace_s = grace_s
        assert proc.stdout is not None and proc.stderr is not None
        self._pumps = [pump(proc.stdout, "stdout", sink), pump(proc.stderr, "stderr", sink)]
        self._stopper: threading.Thread | None = None
        self._pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(proc.pid)
            except OSError:  # kernel without pidfd
                self._pidfd = None

    @property
    def ref(self) -> JobRef:
        return self._ref

    def wait(self, timeout: float | None) -> int | None:
        if self._pidfd is not None and self.proc.returncode is None:
            # wakes the moment the job exits (Popen.wait with a timeout polls with growing sleeps)
            select.select([self._pidfd], [], [], timeout)
        try:
            code = self.proc.wait(0 if self._pidfd is not None else timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        for t in self._pumps:  # the group may hold the pipes open a little longer
            t.join(timeout=5)
        return code

    def cancel(self, reason: str, force: bool = False) -> None:
        self.cancel_reason = self.cancel_reason or reason
        if force:
            signal_group(self.proc.pid, signal.SIGKILL)
            return
        if self._stopper is None:
            self._stopper = threading.Thread(
                target=stop_group, args=(self.proc.pid, self.grace_s), name="mltrain-stop", daemon=True
            )
            self._stopper.start()


class AttachedLocalHandle(RunHandle):
    """A job of this machine started by another process: followed through its process group (its
    output went to its driver); the exit code is unknown (-1 once it is gone)."""

    def __init__(self, spec: RunSpec, ref: JobRef, grace_s: float) -> None:
        super().__init__(spec)
        self._ref = ref
        self.grace_s = grace_s

    @property
    def ref(self) -> JobRef:
        return self._ref

    def wait(self, timeout: float | None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while group_exists(int(self._ref["pgid"])):
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return -1

    def cancel(self, reason: str, force: bool = False) -> None:
        self.cancel_reason = self.cancel_reason or reason
        pgid = int(self._ref["pgid"])
        if force:
            signal_group(pgid, signal.SIGKILL)
        else:
            threading.Thread(target=stop_group, args=(pgid, self.grace_s), daemon=True).start()


class ForkedHandle(RunHandle):
    """A job forked by a pre-warmed fork server (mltrain/remote/forkserver.py): a process group of
    its own like a Popen'd job; its exit status comes from the server, which is released after."""

    def __init__(
        self,
        spec: RunSpec,
        pool: ForkServerPool,
        server: ForkServer,
        forked: tuple[int, int, int],
        sink: OutputSink,
        grace_s: float,
    ) -> None:
        super().__init__(spec)
        self.pool, self.server = pool, server
        self.pid, out_r, err_r = forked
        self._ref = local_ref(self.pid)
        self.grace_s = grace_s
        self._pumps = [pump(open(out_r, "rb", 0), "stdout", sink), pump(open(err_r, "rb", 0), "stderr", sink)]  # noqa: SIM115
        self._code: int | None = None
        self._stopper: threading.Thread | None = None

    @property
    def ref(self) -> JobRef:
        return self._ref

    def wait(self, timeout: float | None) -> int | None:
        if self._code is None:
            code = self.server.wait_exit(timeout)
            if code is None:
                return None
            if not self.server.ready:  # the server died: its job got SIGTERM, make sure it is gone
                stop_group(self.pid, self.grace_s, first=signal.SIGTERM)
            for t in self._pumps:
                t.join(timeout=5)
            self.pool.release(self.server)
            self._code = code
        return self._code

    def cancel(self, reason: str, force: bool = False) -> None:
        self.cancel_reason = self.cancel_reason or reason
        if force:
            signal_group(self.pid, signal.SIGKILL)
        elif self._stopper is None:
            self._stopper = threading.Thread(
                target=stop_group, args=(self.pid, self.grace_s), name="mltrain-stop", daemon=True
            )
            self._stopper.start()
