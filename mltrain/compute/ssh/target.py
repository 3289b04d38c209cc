"""The SSH compute target: jobs run on a pool of the user's own machines reached over SSH.

Per run: a host with a free slot is taken at ``upload`` (:mod:`~mltrain.compute.ssh.pool`) and given
back at ``cleanup``. ``upload`` sends only the snapshot files the host's blob cache lacks
(:mod:`~mltrain.compute.ssh.sync`), then makes the run folder there from the cache. ``prepare``
builds the environment on a host (:mod:`mltrain.environments.remote`); other hosts build it when a
job first lands there. Every command goes to the host's warm helper over the one connection
(:mod:`mltrain.remote.ssh_serve`), which starts the job in a process group of its own (forked from a
warm fork server after ``prewarm``), followed by :class:`~mltrain.compute.ssh.handle.SSHHandle`; a job
in an image is a foreground ``docker run`` started the same way, with the remote run folder mounted
at ``/mltrain/run``.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
from typing import TYPE_CHECKING, Any

from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec, job_environment
from mltrain.compute.docker.container import container_name, job_container
from mltrain.compute.node_outputs import node_writes_outputs
from mltrain.compute.ssh.config import SSHComputeConfig
from mltrain.compute.ssh.conn import ConnectionLost, Remote, ended
from mltrain.compute.ssh.handle import SSHHandle
from mltrain.compute.ssh.mux import read_exact
from mltrain.compute.ssh.pool import HostPool
from mltrain.compute.ssh.sync import SHIM_IN_RUN, BlobSync, Upload, upload_of
from mltrain.environments.base import EnvironmentBuilder, Materialised
from mltrain.environments.remote import RemoteEnvironments
from mltrain.errors import ComputeError, ConfigError
from mltrain.remote.ssh_outputs import DIRECT_MARK
from mltrain.run_context import RUN_INFO_FILE

if TYPE_CHECKING:
    from mltrain.compute.delivery import Delivered
    from mltrain.environments.base import LogFn
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace
    from mltrain.workspace.blobs import BlobStore


class SSHCompute(ComputeTarget):
    """Runs jobs on the hosts of ``compute.hosts`` over SSH."""

    name = "ssh"
    Config = SSHComputeConfig
    builds = ("system", "venv", "docker")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        assert isinstance(self.config, SSHComputeConfig)
        self.cfg: SSHComputeConfig = self.config
        self.pool = HostPool(self.cfg)
        self.sync = BlobSync()
        self.envs = RemoteEnvironments(
            self.pool, self.sync, offline=bool(self.cfg.offline), offline_memory_s=float(self.cfg.offline_memory_s)
        )
        self._uploads: dict[str, Upload] = {}
        self._direct: dict[str, BlobStore] = {}  # runs whose host uploads outputs/ and logs/ into the store itself
        self._job_envs: dict[str, Materialised] = {}
        self._ws: Workspace | None = None  # the workspace of the runs uploaded (a run moved off a lost host)
        self._warm: tuple[RunSpec, list[str], int] | None = None  # a sweep's prewarm request
        self._warmed: set[tuple[str, str]] = set()  # (host, python) with warm fork servers

    def describe(self) -> str:
        return f"ssh ({', '.join(r.label for r in self.remotes)})"

    # -- the pool ---------------------------------------------------------------------------------
    @property
    def remotes(self) -> list[Remote]:
        return self.pool.remotes

    @property
    def down(self) -> dict[str, str]:
        """Host label -> why it is skipped."""
        return self.pool.down

    @property
    def _held(self) -> dict[str, Remote]:
        return self.pool.held

    @property
    def stats(self) -> dict[str, int]:
        """Blobs (and bytes) sent to the hosts, and blobs they had already."""
        return self.sync.stats

    def check(self) -> None:
        self.pool.check()

    def report(self, build_env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """What each host has (``mltrain compute check``): python, uv, pip, docker, free disk, slots,
        whether it reaches the package index with ``build_env`` (an environment's build variables)."""
        return self.pool.report(build_env)

    def capacity(self) -> int:
        return self.pool.capacity()

    def free_slots(self) -> dict[str, int]:
        return self.pool.free_slots()

    # -- environment ------------------------------------------------------------------------------
    def builder(self, env: ResolvedEnvironment) -> EnvironmentBuilder:
        super().builder(env)  # refuses kinds this target cannot run
        if env.spec.build != "docker" and (self.cfg.cpus is not None or self.cfg.memory_gb is not None):
            raise ConfigError(
                f"compute.cpus and compute.memory_gb limit a job's container, but environment {env.spec.name} "
                f"has build: {env.spec.build} (no container)",
                hint="use an environment with build: docker, or leave compute.cpus and compute.memory_gb unset",
            )
        return self.envs.builder(env.spec.build)

    def prepare(self, ws: Workspace, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        from mltrain.environments.base import record_use

        built = self.builder(env).materialise(env, log, rebuild=rebuild)
        record_use(ws, env, built)
        self.envs.prepared = env
        return built

    def holds(self, where: str) -> bool:
        """True when ``where`` (``ssh:HOST`` of an environment record) is a host of this pool."""
        return self.pool.by_where(where) is not None

    def drop(self, kind: str, where: str, location: str, older_than: float) -> tuple[bool, str]:
        """Delete the environment at ``location`` on the host ``where`` (``mltrain envs prune``) unless
        it was used there since ``older_than``: (removed or already gone, note)."""
        remote = self.pool.by_where(where)
        if remote is None:
            return False, f"{where} is not a host of the given compute"
        return self.envs.drop(remote, kind, location, older_than)

    # -- upload -----------------------------------------------------------------------------------
    def upload(self, ws: Workspace, spec: RunSpec) -> None:
        """Take a host's slot, build the prepared environment there if it is the host's first job
        (recorded as living there), send the blobs it lacks (each checked against its hash as it is
        sent), make the run folder from its cache."""
        up = upload_of(ws, spec)
        self._uploads[spec.run_id] = up
        if node_writes_outputs(ws.blobs, spec):
            self._direct[spec.run_id] = ws.blobs
        self._ws = ws
        self._place(ws, spec, up, [])

    def _place(self, ws: Workspace, spec: RunSpec, up: Upload, lost: list[str]) -> Remote:
        """Take a slot on a host not in ``lost`` (labels) for ``spec``: its environment built there on its
        first job (recorded as living there), the run folder made (or deferred to the start request). A
        host lost meanwhile is marked down and skipped: the job goes to another one. The host."""
        while True:
            remote = self.pool.acquire(spec.run_id, exclude=tuple(lost))
            try:
                env = self.envs.prepared
                if env is not None and not self.envs.built_on(remote, env):  # first job on this host
                    from mltrain.environments.base import record_use

                    record_use(ws, env, self.envs.on(remote, env))
                # a run without data goes with its start request: one round trip when the host has the files
                self.sync.materialise(remote, spec.run_id, up, defer=not (spec.inputs or spec.outputs))
                return remote
            except ConnectionLost as exc:
                self._skip(spec, remote, exc, lost)

    def _skip(self, spec: RunSpec, remote: Remote, exc: ConnectionLost, lost: list[str]) -> None:
        self.pool.mark_down(remote, str(exc))
        self.pool.release(spec.run_id)
        lost.append(remote.label)
        print(f"mltrain: skipping SSH host {remote.label}: {exc}", file=sys.stderr)

    def deliver(self, ws: Workspace, spec: RunSpec, log: LogFn) -> Delivered:
        """The inputs into the run folder on the host ``upload`` took, through its blob cache."""
        from mltrain.compute.ssh.inputs import deliver_ssh

        return deliver_ssh(self.pool.held.get(spec.run_id) or self.pool.acquire(spec.run_id), spec, log)

    # -- the job ----------------------------------------------------------------------------------
    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        remote = self.pool.held.get(spec.run_id) or self.pool.acquire(spec.run_id)
        lost: list[str] = []
        while True:
            try:
                pgid, channel = self._start_on(remote, spec, env)
                break
            except ConnectionLost as exc:
                up, ws = self._uploads.get(spec.run_id), self._ws
                if up is None or ws is None or spec.inputs or spec.outputs:
                    raise  # its inputs are on that host: the run's retries decide
                # nothing ran there: the job goes to another host, as in upload()
                self._skip(spec, remote, exc, lost)
                remote = self._place(ws, spec, up, lost)
        self._job_envs[spec.run_id] = env
        container = container_name(spec.run_id) if env.builder == "docker" else None
        handle = SSHHandle(
            spec, self.cfg, self.pool, remote, pgid, sink, channel=channel, container=container, restart=self.retry
        )
        handle.direct = self._direct.get(spec.run_id)
        return handle

    def prewarm(self, env: Materialised, spec: RunSpec, modules: list[str], workers: int) -> bool:
        """Warm fork servers on each host (as many as its slots, up to ``workers``) that imported
        ``modules``: later jobs of ``env`` are forked there from them, as local compute does. Hosts
        the environment is not built on yet are warmed when their first job comes."""
        if env.builder == "docker":
            return False
        self._warm = (spec, list(modules), workers)
        threads = []
        for remote in self.remotes:  # in parallel: a host's first job waits for its servers' imports
            here = env.where == remote.where or env.builder == "system"  # (a venv is built on first use)
            if here and remote.probe is not None and remote.label not in self.down:
                threads.append(threading.Thread(target=self._prewarm_on, args=(remote, env), daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return True

    def _prewarm_on(self, remote: Remote, env: Materialised) -> None:
        env = self.envs.for_host(remote, env)
        if self._warm is None or env.builder == "docker" or (remote.label, env.python) in self._warmed:
            return
        spec, modules, workers = self._warm
        environ = job_environment(spec, env, "/", None, inherit=False)
        for key in ("MLTRAIN_RUN_DIR", "MLTRAIN_RUN_ID", "MLTRAIN_EXPERIMENT"):
            environ.pop(key, None)
        path = environ.pop("PATH", "")
        request = {
            "python": env.python,
            "env": environ,
            "path_prepend": path.rstrip(os.pathsep),
            "modules": modules,
            "size": max(1, min(remote.slots, workers)),
        }
        self._warmed.add((remote.label, env.python))
        try:
            remote.agent("prewarm", request=request, timeout=60)
        except ComputeError as exc:  # jobs then start the usual way
            print(f"mltrain: no warm interpreters on {remote.label}: {exc}", file=sys.stderr)

    def _start_on(self, remote: Remote, spec: RunSpec, env: Materialised) -> tuple[int, Any]:
        """Start the job on ``remote``: its pgid and the channel that goes on streaming its output."""
        assert remote.probe is not None
        env = self.envs.for_host(remote, env)
        self._prewarm_on(remote, env)
        run_dir = f"{remote.probe['workdir']}/runs/{spec.run_id}"
        files = {}
        info = spec.run_dir / RUN_INFO_FILE
        if info.is_file():
            files[RUN_INFO_FILE] = info.read_text()
        if spec.run_id in self._direct:
            files[DIRECT_MARK] = "the host uploads outputs/ and logs/ into the artifact root itself\n"
        if env.builder == "docker":
            request = self._container_request(remote, spec, env, run_dir)
        else:
            shim = f"{run_dir}/{SHIM_IN_RUN}" if spec.shim_dir else None
            environ = job_environment(spec, env, run_dir, shim, inherit=False)
            path = environ.pop("PATH", "")
            request = {
                "argv": [env.python, spec.script, *spec.argv(run_dir)],
                "env": environ,
                "path_prepend": path.rstrip(os.pathsep),
            }
        request["files"] = files
        up = self._uploads.get(spec.run_id)
        deferred = up is not None and up.deferred
        if deferred:
            request["materialise"] = up.files
        kind, body, chan = self._start_request(remote, spec, request)
        sent = 0
        if kind == b"b" and up is not None:  # the host lacks blobs of the run: they go now, then the start again
            chan.close()
            missing = json.loads(body)
            self.sync.send_blobs(remote, missing, up.local)
            sent = len(missing)
            kind, body, chan = self._start_request(remote, spec, request)
            if kind == b"b":
                chan.close()
                raise ComputeError(f"the upload of run {spec.run_id} to {remote.label} did not complete")
        if deferred and kind == b"j":
            self.sync.made(remote, up, sent)
        if kind != b"j":
            code, err = ended(chan)
            if code == -1 and not err:  # no exit status: the connection went, not the job's start
                raise ConnectionLost(f"connection lost to {remote.label} while starting run {spec.run_id}")
            detail = err.decode(errors="replace")[-800:]
            raise ComputeError(
                f"run {spec.run_id} did not start on {remote.label} (exit {code}): {detail}",
                hint="check the environment and job.script",
            )
        chan.settimeout(self.cfg.keepalive_s * 3)
        return int(json.loads(body)["pgid"]), chan

    def _start_request(self, remote: Remote, spec: RunSpec, request: dict[str, Any]) -> tuple[bytes, bytes, Any]:
        """Send the start ``request``: the kind of the first frame of the answer ('j': started; 'b': the
        blobs the host lacks; b"" when the command ended without one), its data and the channel."""
        beat = self.cfg.keepalive_s
        chan = remote.agent_channel("start", spec.run_id, str(beat), timeout=max(90.0, beat * 3))
        try:
            chan.sendall(json.dumps(request).encode() + b"\n")
            head = read_exact(chan, 5)
            if head is None or head[:1] not in (b"j", b"b"):
                return b"", b"", chan
            body = read_exact(chan, struct.unpack(">I", head[1:])[0])
        except (OSError, EOFError) as exc:
            chan.close()
            raise ConnectionLost(f"connection lost to {remote.label} while starting run {spec.run_id}: {exc}") from None
        if body is None:
            return b"", b"", chan
        return head[:1], body, chan

    def _container_request(self, remote: Remote, spec: RunSpec, env: Materialised, run_dir: str) -> dict[str, Any]:
        """The helper's start request of a job in ``env``'s image: a foreground ``docker run`` (the
        docker target's container) with the remote run folder mounted as the container's working folder."""
        assert remote.probe is not None
        uid_gid = f"{remote.probe['uid']}:{remote.probe['gid']}"
        shim = SHIM_IN_RUN if spec.shim_dir else None
        container = job_container(
            spec, env, run_dir, shim_in_run=shim, user=uid_gid, cpus=self.cfg.cpus, memory_gb=self.cfg.memory_gb
        )
        argv, values = container.run_argv(str(remote.probe["docker"]))
        return {"argv": argv, "env": values, "container": {"docker": remote.probe["docker"], "name": container.name}}

    def retry(self, handle: SSHHandle, message: str) -> bool:
        """Start ``handle``'s run again on another host after ``message`` (its host was lost);
        False when ``compute.retries`` is used up or no other host can take it."""
        if handle.attempt >= self.cfg.retries or handle.spec.run_id not in self._uploads:
            return False
        lost = handle.remote
        self.pool.mark_down(lost, message)
        self.pool.release(handle.spec.run_id)
        try:
            remote = self.pool.acquire(handle.spec.run_id, exclude=(lost.label,))
            self.sync.materialise(remote, handle.spec.run_id, self._uploads[handle.spec.run_id])
            if handle.spec.inputs or handle.spec.outputs:
                from mltrain.compute.ssh.inputs import deliver_ssh

                deliver_ssh(remote, handle.spec, handle.sink.log)
            pgid, channel = self._start_on(remote, handle.spec, self._job_envs[handle.spec.run_id])
        except ComputeError as exc:
            handle.sink.log(f"{message}; no other host could run it again: {exc}")
            return False
        handle.sink.log(
            f"{message}; running it again on {remote.label} (retry {handle.attempt + 1} of {self.cfg.retries})"
        )
        handle.restarted(remote, pgid, channel)
        return True

    def attach(
        self, ref: JobRef, spec: RunSpec, sink: OutputSink, *, blobs: BlobStore | None = None
    ) -> RunHandle | None:
        remote = self.pool.remote_for(ref)
        status = remote.agent("status", str(ref["run"]))
        if not status["exists"] or not status["job"]:
            return None
        container = ref.get("container")
        pgid = int(ref["pgid"])
        return SSHHandle(
            spec, self.cfg, self.pool, remote, pgid, sink, offsets=(-1, -1, -1), mirror=False, container=container
        )

    def stop(self, ref: JobRef, grace_s: float | None = None) -> bool:
        remote = self.pool.remote_for(ref)
        grace = self.cancel_grace_s if grace_s is None else grace_s
        answer = remote.agent("stop", str(ref["run"]), str(grace), "TERM", timeout=grace * 3 + 60)
        return bool(answer["stopped"])

    def collect(self, spec: RunSpec, handle: RunHandle) -> None:
        """The handle's ``collect``, counted in :attr:`stats`."""
        try:
            handle.collect()
        finally:
            if isinstance(handle, SSHHandle):
                self.sync.count(outputs_stored=len(handle.stored), bytes_received=handle.received)

    def cleanup(self, spec: RunSpec, handle: RunHandle | None) -> None:
        """Give the slot back; the handle removes the remote run folder. Without a handle (canceled
        before the job started) the folder ``upload`` made is removed here (unless keep_failed)."""
        remote = self.pool.held.get(spec.run_id)
        self.pool.release(spec.run_id)
        self._uploads.pop(spec.run_id, None)
        self._direct.pop(spec.run_id, None)
        self._job_envs.pop(spec.run_id, None)
        if handle is not None:
            handle.cleanup()
        elif remote is not None and remote.probe is not None and not self.cfg.keep_failed:
            try:
                remote.agent("remove", spec.run_id, timeout=60)
            except ComputeError:
                pass  # the host is gone: nothing more to release

    def close(self) -> None:
        self.pool.close()
