"""Local compute: the job runs as a process group of its own on this machine, in its run folder.

Its reference is ``{"kind": "local", "host", "pgid", "start"}``: the process group and the start
token of its leader, so a later process never mistakes another group that reused the id for it.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, TYPE_CHECKING

from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec, job_environment
from mltrain.compute.configs import LocalComputeConfig
from mltrain.environments.base import Materialised
from mltrain.errors import ComputeError
from mltrain.remote.procs import group_exists, hostname, owns_group, signal_group, start_token, stop_group

if TYPE_CHECKING:
    from mltrain.remote.forkserver import ForkServer, ForkServerPool

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the job gets SIGTERM if the driver thread that started it dies (e.g. kill -9), so the
    in-script API flushes what it logged before the job ends; recovery stops what is left."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


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


class LocalCompute(ComputeTarget):
    """Runs jobs on this machine."""

    name = "local"
    Config = LocalComputeConfig

    _pools: dict[str, ForkServerPool] | None = None

    def prewarm(self, env: Materialised, spec: RunSpec, modules: list[str], workers: int) -> bool:
        """Start ``workers`` fork servers of ``env`` that import ``modules``; later jobs of ``env``
        are forked from them (``spec``: a job of the sweep, for the environment variables)."""
        from mltrain.remote.forkserver import ForkServerPool

        if self._pools is None:
            self._pools = {}
        if env.python not in self._pools:
            shim = str(spec.shim_dir) if spec.shim_dir and env.builder != "system" else None
            environ = job_environment(spec, env, "/", shim)
            for key in ("MLTRAIN_RUN_DIR", "MLTRAIN_RUN_ID", "MLTRAIN_EXPERIMENT"):
                environ.pop(key, None)
            self._pools[env.python] = ForkServerPool(env.python, environ, modules, workers)
        return True

    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        shim = str(spec.shim_dir) if spec.shim_dir and env.builder != "system" else None
        environ = job_environment(spec, env, str(spec.run_dir), shim)
        pool = self._pools.get(env.python) if self._pools else None
        server = pool.acquire() if pool is not None else None
        if pool is not None and server is not None:
            forked = server.fork(spec.script, spec.arguments, spec.run_dir, environ)
            if forked is not None:
                return ForkedHandle(spec, pool, server, forked, sink, self.cancel_grace_s)
        argv = [env.python, spec.script, *spec.arguments]
        proc = subprocess.Popen(
            argv,
            cwd=spec.run_dir,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        return LocalHandle(spec, proc, sink, self.cancel_grace_s)

    def _owned(self, ref: JobRef) -> int | None:
        """The process group of ``ref`` when it still runs here, else None."""
        if ref.get("host") != hostname():
            raise ComputeError(
                f"the job ran on {ref.get('host')}, not on this machine ({hostname()})",
                hint=f"run this command on {ref.get('host')}",
            )
        pgid = int(ref.get("pgid") or 0)
        return pgid if owns_group(pgid, ref.get("start")) else None

    def attach(self, ref: JobRef, spec: RunSpec, sink: OutputSink) -> RunHandle | None:
        pgid = self._owned(ref)
        return None if pgid is None else AttachedLocalHandle(spec, ref, self.cancel_grace_s)

    def stop(self, ref: JobRef, grace_s: float | None = None) -> bool:
        pgid = self._owned(ref)
        if pgid is None:
            return False
        stop_group(pgid, self.cancel_grace_s if grace_s is None else grace_s, first=signal.SIGTERM)
        return True

    def close(self) -> None:
        for pool in (self._pools or {}).values():
            pool.close()
        self._pools = None

    def describe(self) -> str:
        return f"local ({os.uname().nodename})"
