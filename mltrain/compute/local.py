"""Local compute: the job runs as a process group of its own on this machine, in its run folder."""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import threading
from typing import IO

from mltrain.compute.base import ComputeTarget, OutputSink, RunHandle, RunSpec, job_environment
from mltrain.environments.base import Materialised
from mltrain.procs import signal_group, stop_group

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the job gets SIGKILL if the driver thread that started it dies (e.g. kill -9)."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
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


class LocalHandle(RunHandle):
    def __init__(self, spec: RunSpec, proc: subprocess.Popen[bytes], sink: OutputSink, grace_s: float) -> None:
        super().__init__(spec)
        self.proc = proc
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
    def pid(self) -> int | None:
        return self.proc.pid

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


class LocalCompute(ComputeTarget):
    """Runs jobs on this machine."""

    name = "local"

    def __init__(self, cancel_grace_s: float = 5.0) -> None:
        self.cancel_grace_s = float(cancel_grace_s)

    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        shim = str(spec.shim_dir) if spec.shim_dir and env.builder != "system" else None
        environ = job_environment(spec, env, str(spec.run_dir), shim)
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

    def describe(self) -> str:
        return f"local ({os.uname().nodename})"
