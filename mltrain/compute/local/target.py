"""The local compute target: jobs start as a process group of their own (``Popen``), or are forked by
the warm servers of a sweep (``prewarm``); attach and stop go through the process group of the reference.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec, job_environment
from mltrain.compute.local.config import LocalComputeConfig
from mltrain.compute.local.handles import AttachedLocalHandle, ForkedHandle, LocalHandle
from mltrain.environments.base import Materialised
from mltrain.errors import ComputeError
from mltrain.remote.forkserver_main import die_with_parent
from mltrain.remote.procs import hostname, owns_group, stop_group

if TYPE_CHECKING:
    from mltrain.remote.forkserver import ForkServerPool
    from mltrain.workspace.blobs import BlobStore


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
            forked = server.fork(spec.script, spec.argv(str(spec.run_dir)), spec.run_dir, environ)
            if forked is not None:
                return ForkedHandle(spec, pool, server, forked, sink, self.cancel_grace_s)
        argv = [env.python, spec.script, *spec.argv(str(spec.run_dir))]
        proc = subprocess.Popen(
            argv,
            cwd=spec.run_dir,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
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

    def attach(
        self, ref: JobRef, spec: RunSpec, sink: OutputSink, *, blobs: BlobStore | None = None
    ) -> RunHandle | None:
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
