"""SSH compute: jobs run on a pool of the user's own machines reached over SSH.

Per run: a host with a free slot is taken at ``upload`` (the first step of a trial that needs one)
and given back at ``cleanup``; so a sweep launcher that runs trials from many threads spreads them
over the hosts by free slots, and a trial waits while every slot is busy. ``upload`` sends only
the snapshot files the host's blob cache lacks (one round trip to ask, then SFTP), then makes the run
folder there from the cache. ``prepare`` builds the environment (a venv by uv, keyed by the same hash
as locally; with ``build: docker`` the image the docker target would build, in the engine the host's
``docker`` CLI reaches) on a host; other hosts build it when a job first lands there. The job runs under a
supervisor in a process group of its own; output and metrics are streamed live over one channel
with heartbeats, so a host that goes silent is "connection lost" within 3 × ``keepalive_s``
(and with ``retries`` the run starts again on another host). A job in an image is a foreground
``docker run`` under that supervisor, with the remote run folder mounted at ``/mltrain/run``. The
reference ``{"kind": "ssh", "host", "port", "user", "key_file", "run", "pgid"}`` (plus ``container``)
reaches the job from any process.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.archive import extract_outputs
from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec, job_environment
from mltrain.compute.configs import SSHComputeConfig, SSHHostConfig
from mltrain.compute.ssh_conn import ConnectionLost, Remote
from mltrain.environments.base import EnvironmentBuilder, Materialised
from mltrain.errors import ComputeError
from mltrain.run_context import METRICS_FILE, RUN_INFO_FILE

if TYPE_CHECKING:
    from mltrain.environments.base import LogFn
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace

SHIM_IN_RUN = ".mltrain/shim"  # where the in-script API goes in a remote run folder
MAX_FRAME = 2 << 30  # bytes in one frame of the helper's stream (the packed run folder is the largest)


@dataclass
class Upload:
    """What a run's folder is made of: (path, sha256, size, mode) and the local file of each blob."""

    files: list[tuple[str, str, int, int]]
    local: dict[str, Path]


class RemoteEnvBuilder(EnvironmentBuilder):
    """Builds environments on the hosts of an SSH target (``venv``: uv there; ``system``: python3;
    ``docker``: an image in the host's Docker engine)."""

    def __init__(self, compute: SSHCompute, kind: str) -> None:
        self.compute = compute
        self.kind = kind

    def check(self, env: ResolvedEnvironment) -> None:
        """``build: docker``: a base image, and hosts whose Docker engine answers (others are skipped)."""
        if self.kind == "docker":
            from mltrain.environments.docker import require_base_image

            require_base_image(env)
            self.compute.require_docker(env)

    def materialise(self, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        remote = self.compute.pick_host()
        return self.compute.env_on(remote, env, log)


class SSHHandle(RunHandle):
    """A job on a host, followed over one channel (output, metrics, heartbeats, exit code)."""

    def __init__(
        self,
        spec: RunSpec,
        compute: SSHCompute,
        remote: Remote,
        pgid: int,
        sink: OutputSink,
        offsets: tuple[int, int, int] = (0, 0, 0),
        mirror: bool = True,
        channel: Any = None,
        container: str | None = None,
    ) -> None:
        super().__init__(spec)
        self.compute = compute
        self.container = container  # the name of the job's container (build: docker)
        self.remote = remote
        self.pgid = pgid
        self.sink = sink
        self.mirror = mirror  # write metrics into the local run folder as they come
        self.offsets = list(offsets)
        self.code: int | None = None
        self.lost: ComputeError | None = None
        self.attempt = 0
        self.removed = False  # the remote run folder is gone (collected and removed in one go)
        self.packed: bytes | None = None  # outputs/, logs/, uploads, metrics: tar sent at the job's end
        self.finisher: Any = None  # the ended job's stream, open until cleanup says remove or keep
        self._channel = channel  # the start command's channel, which goes on as the follow stream
        self._metrics = bytearray()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._stopper: threading.Thread | None = None
        threading.Thread(target=self._follow, name="mltrain-ssh-follow", daemon=True).start()

    @property
    def ref(self) -> JobRef:
        ref: JobRef = {"kind": "ssh", **self.remote.ident(), "run": self.spec.run_id, "pgid": self.pgid}
        if self.container:
            ref["container"] = self.container
        return ref

    # -- following --------------------------------------------------------------------------------
    def _follow(self) -> None:
        while True:
            try:
                self._stream()
                break
            except (ConnectionLost, OSError, EOFError) as exc:
                if self._reconnected():
                    continue  # the job kept running; resume where the stream stopped
                message = str(exc) if isinstance(exc, ConnectionLost) else f"connection lost to {self.remote.label}"
                if self.cancel_reason is None and self.compute.retry(self, message):
                    continue
                self.compute.mark_down(self.remote, message)  # later runs (a sweep's) go to other hosts
                self.lost = ConnectionLost(
                    f"{message}: the host stopped answering while run {self.spec.run_id} ran on it",
                    hint="check the host (is sshd up, the network?); compute.retries runs it again elsewhere",
                )
                break
        self._done.set()

    def _reconnected(self) -> bool:
        self.remote.close()
        try:
            self.remote.transport()
            return True
        except ComputeError:
            return False

    def _stream(self) -> None:
        """Follow the job to its end. A started job's stream (``mirror``) also brings the packed run
        folder ('p') and stays open afterwards, so that ``cleanup`` needs no command of its own."""
        beat = self.compute.cfg.keepalive_s
        chan, self._channel = self._channel, None
        if chan is None:
            finish = "pack" if self.mirror else ""
            args = ("follow", self.spec.run_id, ",".join(map(str, self.offsets)), str(beat), finish)
            chan = self.remote.channel(self.remote.agent_command(*args), timeout=beat * 3)
            if not finish:
                chan.shutdown_write()
        keep = False
        try:
            while True:
                kind, data = _read_frame(chan, self.remote)
                if kind == "x":
                    self.code = int(data)
                    keep = self.mirror
                    self.finisher = chan if keep else None
                    return
                if kind == "p":
                    self.packed = data
                elif kind in "oem":
                    self.offsets["oem".index(kind)] += len(data)
                if kind == "o":
                    self.sink.write(data, "stdout")
                elif kind == "e":
                    self.sink.write(data, "stderr")
                elif kind == "m":
                    with self._lock:
                        self._metrics += data
                    if self.mirror:
                        path = self.spec.run_dir / METRICS_FILE
                        path.parent.mkdir(parents=True, exist_ok=True)
                        with open(path, "ab") as f:
                            f.write(data)
        finally:
            if not keep:
                chan.close()

    def finish(self, remove: bool) -> bool:
        """Tell the open stream of an ended job to remove (or keep) its run folder; False when that
        stream is not open any more (the caller uses a command instead)."""
        chan, self.finisher = self.finisher, None
        if chan is None:
            return False
        try:
            chan.settimeout(60)
            chan.sendall(b"remove\n" if remove else b"keep\n")
            kind, _ = _read_frame(chan, self.remote)
            return kind == "r"
        except (ComputeError, OSError, EOFError):
            return False
        finally:
            chan.close()

    def restarted(self, remote: Remote, pgid: int, channel: Any) -> None:
        """The run was started again on ``remote`` (a retry): follow it from the start."""
        self.remote, self.pgid, self.offsets, self._channel = remote, pgid, [0, 0, 0], channel
        self.attempt += 1

    # -- the contract -----------------------------------------------------------------------------
    def wait(self, timeout: float | None) -> int | None:
        if not self._done.wait(timeout):
            return None
        if self.lost is not None:
            raise self.lost
        return self.code

    def read_metrics(self, limit: int = 8 << 20) -> bytes:
        with self._lock:
            data = bytes(self._metrics[:limit])
            del self._metrics[:limit]
        return data

    def cancel(self, reason: str, force: bool = False) -> None:
        self.cancel_reason = self.cancel_reason or reason
        if self._done.is_set():
            return
        if force:
            threading.Thread(target=self._quiet, args=("kill", self.spec.run_id), daemon=True).start()
        elif self._stopper is None:
            grace = str(self.compute.cancel_grace_s)
            args = ("stop", self.spec.run_id, grace, "INT")
            self._stopper = threading.Thread(target=self._quiet, args=args, name="mltrain-ssh-stop", daemon=True)
            self._stopper.start()

    def _quiet(self, *args: str) -> None:
        try:
            self.remote.agent(*args, timeout=self.compute.cancel_grace_s * 3 + 60)
        except ComputeError as exc:
            self.sink.log(f"could not signal the job on {self.remote.label}: {exc}")


def _read_frame(chan: Any, remote: Remote) -> tuple[str, bytes]:
    """One (kind, data) frame of the helper's stream; ConnectionLost when it ends without one."""
    head = _read_exact(chan, 5)
    size = struct.unpack(">I", head[1:])[0] if head is not None else 0
    if size > MAX_FRAME:
        raise ComputeError(f"{remote.label} sent a frame of {size} bytes; mltrain's helper never does")
    data = _read_exact(chan, size) if head is not None else None
    if head is None or data is None:
        raise ConnectionLost(f"connection lost to {remote.label}")
    return chr(head[0]), data


def _read_exact(chan: Any, size: int) -> bytes | None:
    """``size`` bytes from ``chan`` (None at end of stream); socket.timeout when it goes silent."""
    buf = bytearray()
    while len(buf) < size:
        data = chan.recv(size - len(buf))
        if not data:
            return None
        buf += data
    return bytes(buf)


class SSHCompute(ComputeTarget):
    """Runs jobs on the hosts of ``compute.hosts`` over SSH."""

    name = "ssh"
    Config = SSHComputeConfig
    builds = ("system", "venv", "docker")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        assert isinstance(self.config, SSHComputeConfig)
        self.cfg: SSHComputeConfig = self.config
        self.remotes = [Remote(h, self.cfg) for h in self.cfg.hosts]
        self._cond = threading.Condition()
        self._busy: dict[str, int] = {r.label: 0 for r in self.remotes}
        self._held: dict[str, Remote] = {}  # run id -> the host whose slot it holds
        self.down: dict[str, str] = {}  # host label -> why it was skipped
        self._hints: dict[str, str | None] = {}
        self._envs: dict[str, ResolvedEnvironment] = {}
        self._prepared: ResolvedEnvironment | None = None  # the environment prepare() built last
        self._built: dict[tuple[str, str], Materialised] = {}
        self._env_lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self._job_envs: dict[str, Materialised] = {}
        self.stats = {"blobs_sent": 0, "bytes_sent": 0, "blobs_present": 0}
        self._stats_lock = threading.Lock()

    def describe(self) -> str:
        return f"ssh ({', '.join(r.label for r in self.remotes)})"

    # -- hosts and slots --------------------------------------------------------------------------
    def _reach(self, remote: Remote) -> bool:
        """Connect and probe ``remote``; on failure it is marked down (reported, then skipped)."""
        if remote.probe is not None:
            return True
        try:
            remote.bootstrap()
            return True
        except ComputeError as exc:
            with self._cond:
                self.down[remote.label] = exc.message
                self._hints[remote.label] = exc.hint
                self._cond.notify_all()
            return False

    def check(self) -> None:
        """Connect to every host (in parallel); unreachable ones are reported and skipped, and an
        error names each problem when no host is left."""
        threads = [threading.Thread(target=self._reach, args=(r,), daemon=True) for r in self.remotes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(self.down) == len(self.remotes):
            raise self._none_left()
        for label, why in self.down.items():
            print(f"mltrain: skipping SSH host {label}: {why}", file=sys.stderr)

    def report(self) -> list[dict[str, Any]]:
        """What each host has (``mltrain compute check``): python, uv, pip, docker, free disk, slots."""
        self.down.clear()
        threads = [threading.Thread(target=self._reach, args=(r,), daemon=True) for r in self.remotes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows: list[dict[str, Any]] = []
        for r in self.remotes:
            if r.label in self.down:
                rows.append({"host": r.label, "ok": False, "error": self.down[r.label]})
            else:
                assert r.probe is not None
                keys = ("python", "uv", "pip", "docker", "free_bytes", "cpus", "workdir")
                rows.append({"host": r.label, "ok": True, "slots": r.slots, **{k: r.probe.get(k) for k in keys}})
        return rows

    def _none_left(self) -> ComputeError:
        detail = "\n".join(f"  {label}: {why}" for label, why in self.down.items())
        hint = next((h for h in self._hints.values() if h), None) or "check compute.hosts (mltrain compute check)"
        return ComputeError(f"no SSH host of compute.hosts can run jobs:\n{detail}", hint=hint)

    def capacity(self) -> int:
        """Slots of the hosts not known to be down: how many trials a launcher may run at once."""
        with self._cond:
            return sum(r.slots for r in self.remotes if r.label not in self.down)

    def mark_down(self, remote: Remote, why: str) -> None:
        """``remote`` was lost: skipped by later runs of this target (reported with ``why``)."""
        with self._cond:
            self.down[remote.label] = why
            self._cond.notify_all()

    def free_slots(self) -> dict[str, int]:
        """Free slots per reachable host (for a launcher deciding how many trials to run at once)."""
        with self._cond:
            return {r.label: r.slots - self._busy[r.label] for r in self.remotes if r.label not in self.down}

    def acquire(self, run_id: str, exclude: tuple[str, ...] = ()) -> Remote:
        """A reachable host with a free slot for ``run_id`` (waits while all are busy); the slot is
        held until ``release(run_id)`` (``cleanup`` does it). Thread-safe."""
        while True:
            with self._cond:
                while True:
                    up = [r for r in self.remotes if r.label not in self.down and r.label not in exclude]
                    if not up:
                        raise self._none_left() if self.down else ComputeError("no other SSH host to run on")
                    free = [r for r in up if self._busy[r.label] < r.slots]
                    if free:
                        remote = max(free, key=lambda r: r.slots - self._busy[r.label])
                        self._busy[remote.label] += 1
                        self._held[run_id] = remote
                        break
                    self._cond.wait(1.0)
            if self._reach(remote):
                return remote
            self.release(run_id)

    def release(self, run_id: str) -> None:
        with self._cond:
            remote = self._held.pop(run_id, None)
            if remote is not None:
                self._busy[remote.label] -= 1
                self._cond.notify_all()

    def pick_host(self) -> Remote:
        """A reachable host (no slot taken): the least busy."""
        for remote in sorted(self.remotes, key=lambda r: self._busy[r.label] - r.slots):
            if remote.label not in self.down and self._reach(remote):
                return remote
        raise self._none_left()

    # -- environment ------------------------------------------------------------------------------
    def builder(self, env: ResolvedEnvironment) -> EnvironmentBuilder:
        super().builder(env)  # refuses kinds this target cannot run
        return RemoteEnvBuilder(self, env.spec.build)

    def prepare(self, ws: Workspace, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        from mltrain.environments.base import record_use

        built = self.builder(env).materialise(env, log, rebuild=rebuild)
        record_use(ws, env, built)
        self._prepared = env
        return built

    def env_on(self, remote: Remote, env: ResolvedEnvironment, log: LogFn) -> Materialised:
        """``env`` built on ``remote`` (once per host and hash)."""
        self._envs[env.hash] = env
        key = (remote.label, env.hash)
        with self._env_lock:
            if key in self._built:
                return replace(self._built[key], cached=True)
        assert remote.probe is not None
        where = f"ssh:{remote.label}"
        if env.spec.build == "system":
            python = remote.probe["executable"]
            built = Materialised("system", env.hash, python, python, env.spec.job_env, cached=True, where=where)
        elif env.spec.build == "docker":
            built = self._image_on(remote, env, log)
        else:
            log(f"environment {env.spec.name} ({env.hash[:12]}) on {remote.label}")
            request = {"hash": env.hash, "python": env.spec.python, "lock": env.lock, "env": env.spec.build_env}
            answer = remote.agent("venv", request=request, timeout=None, on_stderr=log)
            built = Materialised(
                "venv",
                env.hash,
                answer["location"],
                answer["python"],
                {**env.spec.job_env, "VIRTUAL_ENV": answer["location"]},
                cached=bool(answer["cached"]),
                where=where,
            )
        with self._env_lock:
            self._built[key] = built
        return built

    def require_docker(self, env: ResolvedEnvironment) -> None:
        """Skip the reachable hosts whose Docker engine does not answer (reported, like a host that is
        down); ComputeError naming each problem and the fix when no host is left."""
        fix = (
            "install Docker on the host (its `docker` CLI on the PATH of SSH sessions, reaching an engine "
            "by DOCKER_HOST or the default socket), or use an environment with build: venv"
        )
        skipped = []
        for remote in self.remotes:
            if remote.label in self.down or remote.probe is None:
                continue
            why = None
            if not remote.probe.get("docker"):
                why = "docker is not installed on this host (no `docker` on the PATH of its SSH sessions)"
            else:
                try:
                    remote.agent("image", request={"check": True}, timeout=60)
                except ComputeError as exc:
                    why = exc.message.split(": ", 1)[-1] if "`image` failed" in exc.message else exc.message
            if why is not None:
                with self._cond:
                    self.down[remote.label] = f"environment {env.spec.name} has build: docker, but {why}"
                    self._hints[remote.label] = fix
                skipped.append(remote.label)
        if len(self.down) == len(self.remotes):
            raise self._none_left()
        for label in skipped:
            print(f"mltrain: skipping SSH host {label}: {self.down[label]}", file=sys.stderr)

    def _image_on(self, remote: Remote, env: ResolvedEnvironment, log: LogFn) -> Materialised:
        """The image of ``env`` in ``remote``'s Docker engine: the tag, Dockerfile and build context
        the docker target uses (its files sent through the host's blob cache), reused when there."""
        import platform
        import tempfile

        from mltrain.environments.docker import (
            LABEL_HASH,
            PYTHON,
            image_key,
            image_tag,
            require_base_image,
            write_build_context,
        )
        from mltrain.workspace.blobs import sha256_file

        assert remote.probe is not None
        key = image_key(env)
        tag = image_tag(key)
        request: dict[str, Any] = {
            "tag": tag,
            "key": key,
            "label": LABEL_HASH,
            "base": require_base_image(env),
            "network": env.spec.docker_network,
            "build_args": env.spec.build_env,
            "files": None,
        }
        answer = remote.agent("image", request=request, timeout=60)
        if "missing" in answer:
            started = time.monotonic()
            log(
                f"building image {tag} for environment {env.spec.name} on {remote.label} "
                f"(FROM {env.spec.base_image}, Python {env.spec.python}, hash {key[:12]})"
            )
            same_machine = remote.probe.get("machine") == platform.machine()
            with tempfile.TemporaryDirectory(prefix="mltrain-docker-context-") as ctx:
                write_build_context(env, Path(ctx), copy_uv=same_machine)
                paths = sorted(p for p in Path(ctx).rglob("*") if p.is_file())
                local = {sha256_file(p): p for p in paths}
                by_path = {p: sha for sha, p in local.items()}
                request["files"] = [
                    (p.relative_to(ctx).as_posix(), by_path[p], p.stat().st_size, p.stat().st_mode & 0o777)
                    for p in paths
                ]
                self._send_blobs(remote, remote.agent("image", request=request, timeout=60).get("missing", []), local)
                answer = remote.agent("image", request=request, timeout=None, on_stderr=log)
            if "missing" in answer:
                raise ComputeError(f"the build context of image {tag} did not reach {remote.label}")
            size = f", {answer['size'] / 1e6:.0f} MB" if answer.get("size") else ""
            log(f"built image {tag} on {remote.label} in {time.monotonic() - started:.1f} s{size}")
        return Materialised(
            "docker",
            env.hash,
            tag,
            PYTHON,
            env.spec.job_env,
            cached=bool(answer["cached"]),
            size_bytes=answer.get("size"),
            where=f"ssh:{remote.label}",
        )

    def _send_blobs(self, remote: Remote, missing: list[str], local: dict[str, Path]) -> int:
        """Upload the blobs ``missing`` on ``remote`` (each from its file in ``local``); bytes sent."""
        sent = 0
        for sha in missing:
            if sha not in local:
                raise ComputeError(f"{remote.label} asked for a blob that was not offered: {sha}")
            sent += remote.put_blob(local[sha], sha)
        with self._stats_lock:
            self.stats["blobs_sent"] += len(missing)
            self.stats["bytes_sent"] += sent
        return sent

    # -- pruning (mltrain envs prune) ---------------------------------------------------------------
    def _by_where(self, where: str) -> Remote | None:
        return next((r for r in self.remotes if f"ssh:{r.label}" == where), None)

    def holds(self, where: str) -> bool:
        """True when ``where`` (``ssh:HOST`` of an environment record) is a host of this pool."""
        return self._by_where(where) is not None

    def drop(self, kind: str, where: str, location: str, older_than: float) -> tuple[bool, str]:
        """Delete the environment at ``location`` on the host ``where`` (a venv folder, an image tag)
        unless it was used there since ``older_than``: (removed or already gone, note)."""
        remote = self._by_where(where)
        if remote is None:
            return False, f"{where} is not a host of the given compute"
        name = location.rstrip("/").rsplit("/", 1)[-1] if kind == "venv" else location
        answer = remote.agent("drop", kind, name, repr(older_than), timeout=300)
        return bool(answer["removed"]) or answer["note"] == "already gone", str(answer["note"])

    def _env_for(self, remote: Remote, built: Materialised) -> Materialised:
        if built.where == f"ssh:{remote.label}":
            return built
        env = self._envs.get(built.hash)
        if env is None:
            raise ComputeError(f"environment {built.hash[:12]} was not prepared by this target")
        return self.env_on(remote, env, lambda line: None)

    # -- upload -----------------------------------------------------------------------------------
    def upload(self, ws: Workspace, spec: RunSpec) -> None:
        """Take a host's slot, build the prepared environment there if it is the host's first job
        (recorded as living there), send the blobs it lacks (each checked against its hash as it is
        sent), make the run folder from its cache."""
        from mltrain.workspace.blobs import sha256_file
        from mltrain.workspace.snapshots import restored_mode

        snapshot = ws.snapshots.get(spec.snapshot_id)
        files = [(f.path, f.sha256, f.size, restored_mode(f.mode)) for f in snapshot.files]
        local = {f.sha256: ws.blobs.path(f.sha256) for f in snapshot.files}
        if spec.shim_dir is not None:
            for path in sorted(Path(spec.shim_dir).rglob("*.py")):
                sha = sha256_file(path)
                files.append((f"{SHIM_IN_RUN}/{path.relative_to(spec.shim_dir).as_posix()}", sha, 0, 0o644))
                local[sha] = path
        up = Upload(files, local)
        self._uploads[spec.run_id] = up
        lost: list[str] = []
        while True:  # a host lost before the job started is skipped: the job goes to another one
            remote = self.acquire(spec.run_id, exclude=tuple(lost))
            try:
                env = self._prepared
                if env is not None and (remote.label, env.hash) not in self._built:  # first job on this host
                    from mltrain.environments.base import record_use

                    record_use(ws, env, self.env_on(remote, env, lambda line: None))
                self._send(remote, spec.run_id, up)
                return
            except ConnectionLost as exc:
                self.mark_down(remote, str(exc))
                self.release(spec.run_id)
                lost.append(remote.label)
                print(f"mltrain: skipping SSH host {remote.label}: {exc}", file=sys.stderr)

    def _send(self, remote: Remote, run_id: str, up: Upload) -> None:
        """One round trip when the host has every blob; else the missing ones go by SFTP, then one more."""
        request = {"files": up.files}
        missing = remote.agent("materialise", run_id, request=request)["missing"]
        self._send_blobs(remote, missing, up.local)
        if missing and remote.agent("materialise", run_id, request=request)["missing"]:
            raise ComputeError(f"the upload of run {run_id} to {remote.label} did not complete")
        with self._stats_lock:
            self.stats["blobs_present"] += len(up.local) - len(missing)

    # -- the job ----------------------------------------------------------------------------------
    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        remote = self._held.get(spec.run_id) or self.acquire(spec.run_id)
        pgid, channel = self._start_on(remote, spec, env)
        self._job_envs[spec.run_id] = env
        container = f"mltrain-{spec.run_id}" if env.builder == "docker" else None
        return SSHHandle(spec, self, remote, pgid, sink, channel=channel, container=container)

    def _start_on(self, remote: Remote, spec: RunSpec, env: Materialised) -> tuple[int, Any]:
        """Start the job on ``remote``: its pgid and the channel that goes on streaming its output."""
        assert remote.probe is not None
        env = self._env_for(remote, env)
        run_dir = f"{remote.probe['workdir']}/runs/{spec.run_id}"
        files = {}
        info = spec.run_dir / RUN_INFO_FILE
        if info.is_file():
            files[RUN_INFO_FILE] = info.read_text()
        if env.builder == "docker":
            request = self._container_request(remote, spec, env, run_dir)
        else:
            shim = f"{run_dir}/{SHIM_IN_RUN}" if spec.shim_dir else None
            environ = job_environment(spec, env, run_dir, shim, inherit=False)
            path = environ.pop("PATH", "")
            request = {
                "argv": [env.python, spec.script, *spec.arguments],
                "env": environ,
                "path_prepend": path.rstrip(os.pathsep),
            }
        request["files"] = files
        beat = self.cfg.keepalive_s
        chan = remote.channel(remote.agent_command("start", spec.run_id, str(beat)), timeout=max(90.0, beat * 3))
        try:
            chan.sendall(json.dumps(request).encode() + b"\n")
            head = _read_exact(chan, 5)
            body = _read_exact(chan, struct.unpack(">I", head[1:])[0]) if head and head[:1] == b"j" else None
        except (OSError, EOFError) as exc:
            chan.close()
            raise ConnectionLost(f"connection lost to {remote.label} while starting run {spec.run_id}: {exc}") from None
        if body is None:
            err = b""
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            code = chan.recv_exit_status()
            chan.close()
            detail = err.decode(errors="replace")[-800:]
            raise ComputeError(
                f"run {spec.run_id} did not start on {remote.label} (exit {code}): {detail}",
                hint="check the environment and job.script",
            )
        chan.settimeout(beat * 3)
        return int(json.loads(body)["pgid"]), chan

    def _container_request(self, remote: Remote, spec: RunSpec, env: Materialised, run_dir: str) -> dict[str, Any]:
        """The helper's start request of a job in ``env``'s image: a foreground ``docker run`` (the
        docker target's settings) with the remote run folder mounted as the container's working folder."""
        from mltrain.compute.docker.target import LABEL_EXPERIMENT, LABEL_RUN, RUN_DIR
        from mltrain.environments.docker import docker_run_argv

        assert remote.probe is not None
        shim = f"{RUN_DIR}/{SHIM_IN_RUN}" if spec.shim_dir else None
        name = f"mltrain-{spec.run_id}"  # also the handle's (start)
        argv, values = docker_run_argv(
            str(remote.probe["docker"]),
            env.location,
            [env.python, spec.script, *spec.arguments],
            name=name,
            labels={LABEL_RUN: spec.run_id, LABEL_EXPERIMENT: spec.experiment},
            binds={run_dir: {"bind": RUN_DIR, "mode": "rw"}},
            environment=job_environment(spec, env, RUN_DIR, shim, inherit=False),
            working_dir=RUN_DIR,
            user=f"{remote.probe['uid']}:{remote.probe['gid']}",
        )
        return {"argv": argv, "env": values, "container": {"docker": remote.probe["docker"], "name": name}}

    def retry(self, handle: SSHHandle, message: str) -> bool:
        """Start ``handle``'s run again on another host after ``message`` (its host was lost);
        False when ``compute.retries`` is used up or no other host can take it."""
        if handle.attempt >= self.cfg.retries or handle.spec.run_id not in self._uploads:
            return False
        lost = handle.remote
        self.mark_down(lost, message)
        self.release(handle.spec.run_id)
        try:
            remote = self.acquire(handle.spec.run_id, exclude=(lost.label,))
            self._send(remote, handle.spec.run_id, self._uploads[handle.spec.run_id])
            pgid, channel = self._start_on(remote, handle.spec, self._job_envs[handle.spec.run_id])
        except ComputeError as exc:
            handle.sink.log(f"{message}; no other host could run it again: {exc}")
            return False
        handle.sink.log(
            f"{message}; running it again on {remote.label} (retry {handle.attempt + 1} of {self.cfg.retries})"
        )
        handle.restarted(remote, pgid, channel)
        return True

    def _remote_for(self, ref: JobRef) -> Remote:
        """The pool's host of ``ref``, or a connection to it made from the reference."""
        for remote in self.remotes:
            if (remote.entry.host, remote.entry.port, remote.entry.user) == (ref["host"], ref["port"], ref["user"]):
                return remote
        entry = SSHHostConfig(host=ref["host"], port=ref["port"], user=ref["user"], key_file=ref.get("key_file"))
        remote = Remote(entry, self.cfg)
        self.remotes.append(remote)
        self._busy[remote.label] = 0
        return remote

    def attach(self, ref: JobRef, spec: RunSpec, sink: OutputSink) -> RunHandle | None:
        remote = self._remote_for(ref)
        status = remote.agent("status", str(ref["run"]))
        if not status["exists"] or not status["job"]:
            return None
        container = ref.get("container")
        return SSHHandle(
            spec, self, remote, int(ref["pgid"]), sink, offsets=(-1, -1, -1), mirror=False, container=container
        )

    def stop(self, ref: JobRef, grace_s: float | None = None) -> bool:
        remote = self._remote_for(ref)
        grace = self.cancel_grace_s if grace_s is None else grace_s
        answer = remote.agent("stop", str(ref["run"]), str(grace), "TERM", timeout=grace * 3 + 60)
        return bool(answer["stopped"])

    def collect(self, spec: RunSpec, handle: RunHandle) -> None:
        """outputs/, logs/, uploads and the metrics file of the remote run folder, into ``spec.run_dir``
        (sent at the job's end on its stream; fetched with a command for a re-attached job)."""
        assert isinstance(handle, SSHHandle)
        if handle.packed is not None:
            extract_outputs(handle.packed, spec.run_dir, self.cfg.max_output_mb)
            return
        remote = handle.remote
        ok = handle.lost is None and handle.code == 0
        remove = handle.finisher is None and (ok or not self.cfg.keep_failed)  # collect and clean up at once
        command = remote.agent_command("pack", spec.run_id, "remove" if remove else "keep")
        code, data, err = remote.execute(command, timeout=120)
        if code != 0:
            raise ComputeError(
                f"cannot fetch the files of run {spec.run_id} from {remote.label}: {err.decode()[-300:]}"
            )
        handle.removed = remove
        extract_outputs(data, spec.run_dir, self.cfg.max_output_mb)

    def cleanup(self, spec: RunSpec, handle: RunHandle | None) -> None:
        """Give the slot back; remove the remote run folder (kept when it failed and keep_failed)."""
        remote = handle.remote if isinstance(handle, SSHHandle) else self._held.get(spec.run_id)
        self.release(spec.run_id)
        self._uploads.pop(spec.run_id, None)
        self._job_envs.pop(spec.run_id, None)
        if remote is None or remote.probe is None:
            return
        failed = not isinstance(handle, SSHHandle) or handle.lost is not None or handle.code != 0
        keep = failed and self.cfg.keep_failed
        if isinstance(handle, SSHHandle) and (handle.removed or handle.finish(remove=not keep)):
            return
        if keep:
            return
        try:
            remote.agent("remove", spec.run_id, timeout=60)
        except ComputeError:
            pass  # the host is gone: nothing more to release

    def close(self) -> None:
        for remote in self.remotes:
            remote.close()
