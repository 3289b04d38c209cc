"""A warm worker on a Ray node: the actor that forks a sweep's trials (standard library only).

Shipped to the cluster with the in-script API (``py_modules``) like :mod:`mltrain.remote.ray_job`,
and made a Ray actor by the driver (:mod:`mltrain.compute.ray.warm_pool`), with the per-run
resources and the runtime_env a job of the run gets (the environment's packages, the staged
snapshot as working_dir), or served by a booted actor (:mod:`mltrain.remote.ray_boot`) that
unpacked the API and snapshot it was sent. It starts a fork server (:mod:`mltrain.remote.forkserver`, run by the
actor's own Python, so the runtime_env's) that imports the script's modules once. Each trial is
then, as with the job wrapper, a fresh private run folder copied from the working_dir, and a fresh
fork of the clean, warm server: a process group of its own with the trial's argv and environment,
its stdout and stderr going to files beside the folder. The driver reads new bytes of stdout,
stderr and the metrics file from offsets (``poll`` answers as soon as there is something new),
signals the group to cancel, and once the script ended fetches outputs/ and logs/ as the
checksummed tar.gz the job wrapper sends. One trial runs at a time (the resources are one run's).

With an object-store artifact root this is the job wrapper's direct path too: the staged snapshot is
its list, fetched from the store into the node's cache (once per node) as each trial's folder is made,
or carried to the worker (:meth:`WarmWorker.carry`) when the node cannot; and a trial's outputs/ and logs/
go into the store by the presigned POST policy it was started with, only the rest through the archive.

The actors are detached (another process can attach to a trial and stop it), so a driver killed
with SIGKILL must not leave them holding the cluster's resources: the driver calls each actor at
least every few seconds (``touch``); an actor nobody called for ``empty_s`` while it holds no trial,
or for ``idle_s`` while it holds one (so recovery can still stop it and fetch its outputs), stops
what it runs and exits.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import zipfile
from typing import Any

from mltrain.remote.forkserver import ForkServer
from mltrain.remote.inputs import deliver_on_node, release_run_folder, resolve_job
from mltrain.remote.procs import signal_group, stop_group
from mltrain.remote.ray_job import METRICS_FILE, SnapshotUnreachable, pack_outputs, store_outputs
from mltrain.remote.ray_job import make_run_dir as _make_run_dir

READ_LIMIT = 4 << 20  # largest piece of one stream a poll returns
ARCHIVE_PIECE = 4 << 20
IDLE_S = 300.0
EMPTY_S = 30.0
CARRIED = "carried"  # in the worker's folder: the staged snapshot carried to it (its node could not fetch it)


class _Trial:
    def __init__(self, run_id: str, run_dir: str, base: str, pid: int, policy: dict[str, Any] | None) -> None:
        self.run_id, self.run_dir, self.pid = run_id, run_dir, pid
        self.policy = policy  # the presigned POST policy its outputs/ and logs/ go into the artifact root by
        self.paths = (base + ".out", base + ".err", os.path.join(run_dir, METRICS_FILE))
        self.archive = base + ".tar.gz"
        self.exit: int | None = None
        # {"sha256", "size", "stored": [[path, sha256, size, N], ...]} or {"too_large": total}, with "said":
        # what the node said of them (files the artifact root did not take)
        self.outputs: dict[str, Any] | None = None


class WarmWorker:
    def __init__(
        self,
        modules: list[str],
        grace_s: float,
        max_output_mb: float,
        idle_s: float = IDLE_S,
        empty_s: float = EMPTY_S,
        source: str | None = None,
        root: str | None = None,
    ) -> None:
        """``source``: the staged snapshot (default the runtime_env's working_dir, the current folder);
        ``root``: this worker's folder on the node, removed by :meth:`shutdown` (default a new one)."""
        self.source = source or os.getcwd()
        self.root = root or tempfile.mkdtemp(prefix="mltrain-warm-")
        self.host = socket.gethostname()
        self.node = _ray_node()
        self.grace_s = grace_s
        self.max_output = max_output_mb * 1024 * 1024
        self.trials: dict[str, _Trial] = {}
        self.running: _Trial | None = None
        self.cond = threading.Condition()
        self.touched = time.monotonic()
        self._server: ForkServer | None = None
        self._owned = threading.Event()
        self._closing = threading.Event()
        # the fork server dies with the thread that started it (PR_SET_PDEATHSIG): one that lives as long as we do
        threading.Thread(target=self._own_server, args=(modules,), name="mltrain-warm-server", daemon=True).start()
        threading.Thread(target=self._watchdog, args=(idle_s, empty_s), name="mltrain-warm-idle", daemon=True).start()

    def _own_server(self, modules: list[str]) -> None:
        try:
            self._server = ForkServer(sys.executable, dict(os.environ), modules)
        finally:
            self._owned.set()
        self._closing.wait()

    @property
    def server(self) -> ForkServer:
        self._owned.wait()
        if self._server is None:
            raise RuntimeError("the fork server of this warm worker did not start")
        return self._server

    def _watchdog(self, idle_s: float, empty_s: float) -> None:
        while not self._closing.wait(min(2.0, empty_s)):
            with self.cond:
                limit = idle_s if self.trials else empty_s
            if time.monotonic() - self.touched > limit:
                self.shutdown()
                os._exit(0)

    def _touch(self) -> None:
        self.touched = time.monotonic()

    def touch(self) -> None:
        """The driver still lives."""
        self._touch()

    # -- the driver's calls ------------------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """Once the fork server imported the modules: what it imported, and this node."""
        self._touch()
        ok = self.server.wait_ready()
        info = {k: v for k, v in self.server.info.items() if k != "ready"}
        return {"ready": ok, "host": self.host, "code": os.path.abspath(__file__), **info}

    def start(
        self,
        run_id: str,
        experiment: str,
        script: str,
        argv: list[str],
        env_vars: dict[str, str],
        policy: dict[str, Any] | None = None,
    ) -> dict:
        """Fork the trial ``run_id`` in a fresh run folder: its pid (= process group), this node and what
        was done for it (``said``). When the staged snapshot is its list (an object-store artifact root) it
        is fetched into the node's cache first (once per node); ``{"unreachable": why}`` when that cannot
        be done (:meth:`carry` then brings it). With ``policy`` (a presigned POST policy of the run's
        staging prefix) the trial's outputs/ and logs/ go into the artifact root from here once it ended."""
        self._touch()
        with self.cond:
            if self.running is not None:
                raise RuntimeError(f"this warm worker still runs {self.running.run_id}")
        server = self.server
        if not server.wait_ready():
            raise RuntimeError("the fork server of this warm worker is not running")
        said: list[str] = []
        try:
            run_dir = _make_run_dir(self.source, run_id, experiment, self.root, said.append)
        except SnapshotUnreachable as exc:
            return {"unreachable": str(exc)}
        try:
            paths = deliver_on_node(self.source, run_dir, self.host, said.append)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        argv, env_vars = resolve_job(argv, env_vars, paths)
        base = os.path.join(self.root, run_id)
        out = os.open(base + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(base + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        environ = {**os.environ, **env_vars, "MLTRAIN_RUN_DIR": run_dir, "PWD": run_dir}
        try:
            pid = server.send({"script": script, "argv": argv, "cwd": run_dir, "env": environ}, out, err)
        finally:
            os.close(out)
            os.close(err)
        if pid is None:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise RuntimeError("the fork server of this warm worker could not fork the trial")
        trial = _Trial(run_id, run_dir, base, pid, policy)
        with self.cond:
            self.trials[run_id] = self.running = trial
        threading.Thread(target=self._reap, args=(trial,), name="mltrain-warm-reap", daemon=True).start()
        return {"pid": pid, "host": self.host, "run_dir": run_dir, "said": said, **self.node}

    def carry(self, snapshot: bytes) -> None:
        """This node could not fetch the snapshot from the artifact root: later trials start from
        ``snapshot`` instead (the staged snapshot itself, a :func:`~mltrain.remote.ray_boot.pack_dir` archive)."""
        self._touch()
        folder = os.path.join(self.root, CARRIED)
        if self.source == folder:
            return
        scratch = tempfile.mkdtemp(prefix=".carried-", dir=self.root)
        try:
            with zipfile.ZipFile(io.BytesIO(snapshot)) as zf:  # (drops absolute and ``..`` parts of names)
                zf.extractall(scratch)
            os.rename(scratch, folder)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        self.source = folder

    def _reap(self, trial: _Trial) -> None:
        server = self.server
        code = server.wait_exit(None)
        if code is None:
            code = -int(signal.SIGTERM)
        if not server.ready:  # the server died: its job got SIGTERM with it; make sure it is gone
            stop_group(trial.pid, self.grace_s, first=signal.SIGTERM)
        said: list[str] = []
        try:
            sent, data, total = store_outputs(trial.run_dir, trial.policy, self.max_output, said.append)
            outputs = {**_keep(trial, data, total, sent), "said": said}
        except Exception as exc:  # noqa: BLE001 - the trial still ends, saying why its outputs cannot come
            outputs = {"error": f"the trial's outputs could not be sent from its node: {exc}", "said": said}
        with self.cond:
            trial.exit, trial.outputs = code, outputs
            if self.running is trial:
                self.running = None
            self.cond.notify_all()

    def poll(self, run_id: str, offsets: list[int], timeout: float) -> dict[str, Any] | None:
        """New bytes of the trial's stdout, stderr and metrics from ``offsets``, as soon as there are
        some (else after ``timeout``); with its exit code and outputs once it ended, ``eof`` once
        everything was read. None when this worker does not know the trial."""
        self._touch()
        deadline = time.monotonic() + timeout
        while True:
            with self.cond:
                trial = self.trials.get(run_id)
                if trial is None:
                    return None
                code, outputs = trial.exit, trial.outputs  # read before the files: then they are complete
            pieces = [_read(path, offset) for path, offset in zip(trial.paths, offsets, strict=True)]
            if any(pieces) or code is not None or time.monotonic() >= deadline:
                eof = code is not None and all(len(p) < READ_LIMIT for p in pieces)
                return {"data": pieces, "exit": code, "outputs": outputs, "eof": eof}
            with self.cond:
                if trial.exit is None:
                    self.cond.wait(0.02)

    def status(self, run_id: str) -> dict[str, Any] | None:
        self._touch()
        with self.cond:
            trial = self.trials.get(run_id)
            return None if trial is None else {"pid": trial.pid, "exit": trial.exit, "host": self.host}

    def signal(self, run_id: str, signum: int) -> bool:
        self._touch()
        trial = self.trials.get(run_id)
        return trial is not None and trial.exit is None and signal_group(trial.pid, signum)

    def stop(self, run_id: str, grace_s: float, first: int, wait: bool) -> bool:
        """Stop the trial's process group: ``first`` (SIGINT or SIGTERM), then SIGTERM, then SIGKILL,
        ``grace_s`` apart; with ``wait``, returns once the trial ended. False when it was not running."""
        self._touch()
        trial = self.trials.get(run_id)
        if trial is None or trial.exit is not None:
            return False
        if not wait:
            threading.Thread(target=stop_group, args=(trial.pid, grace_s, first), daemon=True).start()
            return True
        stop_group(trial.pid, grace_s, first)
        with self.cond:
            self.cond.wait_for(lambda: trial.exit is not None, timeout=30)
        return True

    def archive(self, run_id: str, offset: int) -> bytes:
        """A piece of the trial's outputs archive from ``offset`` (b"" at its end)."""
        self._touch()
        trial = self.trials[run_id]
        return _read(trial.archive, offset, ARCHIVE_PIECE)

    def repack(self, run_id: str) -> dict[str, Any]:
        """The ended trial's outputs archive made again with every file, those its node uploaded into the
        artifact root too (for a driver that did not sign the trial's policy, so cannot check the uploads):
        its outputs as :meth:`poll` gives them."""
        self._touch()
        trial = self.trials[run_id]
        data, total = pack_outputs(trial.run_dir, self.max_output)
        outputs = _keep(trial, data, total, [])
        with self.cond:
            trial.outputs = outputs
        return outputs

    def forget(self, run_id: str) -> None:
        """The trial's run folder and files are no longer needed."""
        self._touch()
        with self.cond:
            trial = self.trials.get(run_id)
            if trial is None or trial.exit is None:
                return
            del self.trials[run_id]
        release_run_folder(trial.run_dir)
        for path in (*trial.paths[:2], trial.archive):
            try:
                os.unlink(path)
            except OSError:
                pass

    def shutdown(self) -> None:
        """Stop the running trial (SIGTERM, then SIGKILL after the grace period) and the fork server."""
        with self.cond:
            running = self.running
        if running is not None:
            stop_group(running.pid, self.grace_s, first=signal.SIGTERM)
        if self._server is not None:
            self._server.sock.close()
            self._server.proc.terminate()
        self._closing.set()
        shutil.rmtree(self.root, ignore_errors=True)


def _keep(trial: _Trial, data: bytes | None, total: int, sent: list[list[Any]]) -> dict[str, Any]:
    """The trial's outputs archive ``data`` (None: too large, ``total`` bytes) written beside its folder;
    its outputs as :meth:`WarmWorker.poll` gives them (``sent``: the files its node uploaded itself)."""
    if data is None:
        return {"too_large": total}
    with open(trial.archive, "wb") as f:
        f.write(data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "stored": sent}


def _ray_node() -> dict[str, str]:
    """``node_ip`` and ``node_id`` of the Ray node this actor runs on (empty outside Ray)."""
    ray = sys.modules.get("ray")  # already loaded in a Ray worker; node-side code imports nothing beyond the stdlib
    if ray is None or not ray.is_initialized():  # never make this process a Ray driver by asking
        return {}
    try:
        return {"node_ip": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id()}
    except Exception:  # noqa: BLE001 - not in a Ray worker (tests), or another Ray
        return {}


def _read(path: str, offset: int, limit: int = READ_LIMIT) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(limit)
    except FileNotFoundError:
        return b""
