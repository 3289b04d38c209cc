"""Ray cluster compute: each run is a Ray job, submitted through Ray's Job Submission API.

The job's runtime_env is the run's environment (the lock as ``pip``/``uv`` packages, installed and
cached by each node) plus the snapshot as ``working_dir`` and the in-script API and the job
wrapper (:mod:`mltrain.remote.ray_job`) as ``py_modules``. Ray places the job on any node with
the resources asked for (``num_cpus``, ``memory_gb``, ``resources``: the entrypoint's resources, so
Ray's resource accounting queues runs when the cluster is full). The wrapper streams the script's
output and metrics through the job's log and sends outputs/ and logs/ back the same way when the
script ends, so they return whichever node ran it (:mod:`mltrain.compute.cluster_stream`).

A run's reference is ``{"kind": "ray", "address", "api", "job", "mark"}``: the job server and the
submission id stem; attempt N of the run is the Ray job ``<job>-N``. A job whose node died
(its supervisor actor died) is submitted again, up to ``max_retries`` times.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.archive import extract_outputs
from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec
from mltrain.compute.cluster_auth import Token, check_address_env, find_token, job_client, job_server_url, probe
from mltrain.compute.cluster_stream import JobStream
from mltrain.compute.cluster_warm import (
    NAMESPACE,
    WarmHandle,
    WarmPool,
    call,
    connect,
    disconnect,
    session,
    start_trial,
)
from mltrain.compute.configs import ClusterComputeConfig
from mltrain.errors import ComputeError
from mltrain.remote.ray_boot import pack_dir
from mltrain.remote.ray_job import GRACE_ENV, MARK_ENV, MAX_OUTPUT_ENV, entrypoint

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

    from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
NODE_DIED = ("JOB_SUPERVISOR_ACTOR_DIED",)  # Ray's error_type when the job's node (or supervisor) died
JOB_END_WAIT_S = 10  # a job whose wrapper sent its exit code ends by itself within this, else it is stopped
STATUS_POLL_S = 0.25  # how often a followed job's status is asked while it is young (then every second)
STATUS_FAST_FOR_S = 60
STOP_MARGIN_S = 30  # beyond the grace period: time for the wrapper to send the outputs back


def _node_died(info: Any) -> bool:
    """Ray's verdict that the job's supervisor (with its node) died, not that the script failed."""
    error_type = getattr(info, "error_type", None)
    error_type = str(getattr(error_type, "value", error_type) or "")
    message = str(getattr(info, "message", "") or "")
    return any(e in error_type for e in NODE_DIED) or message.startswith("Job supervisor actor died")


def _status(info: Any) -> str:
    status = getattr(info, "status", None)
    return str(getattr(status, "value", status) or "")


class ClusterHandle(RunHandle):
    """One run on the cluster, across its attempts; a thread follows the current attempt's log."""

    def __init__(
        self,
        spec: RunSpec,
        compute: ClusterCompute,
        job: str,
        mark: str,
        sink: OutputSink,
        attempt: int,
        submit: dict[str, Any] | None,
    ) -> None:
        super().__init__(spec)
        self.compute = compute
        self.job = job
        self.mark = mark
        self.sink = sink
        self.attempt = attempt
        self._submit = submit  # the submit_job arguments (None: attached, never resubmitted)
        self._code: int | None = None
        self._done = threading.Event()
        self._stop_requested = False
        self._timed_out = False
        self._lock = threading.Lock()
        self.stream = self._new_stream()
        self.streams: list[JobStream] = [self.stream]
        self._thread = threading.Thread(target=self._follow, name="mltrain-ray-follow", daemon=True)
        self._thread.start()

    @property
    def sid(self) -> str:
        return f"{self.job}-{self.attempt}"

    @property
    def ref(self) -> JobRef:
        return {
            "kind": "ray",
            "address": self.compute.config.address,
            "api": self.compute.api,
            "job": self.job,
            "mark": self.mark,
        }

    def _new_stream(self) -> JobStream:
        archive = self.spec.run_dir / ".mltrain" / f"ray-outputs-{self.attempt}.tar.gz"
        return JobStream(self.mark, self.sink, archive)

    # -- following ------------------------------------------------------------------------------
    def _follow(self) -> None:
        code = 1
        try:
            while True:
                info = self._follow_attempt()
                if self.stream.exit_code is not None:
                    code = self.stream.exit_code
                    break
                if self._stop_requested:
                    code = 1 if self._timed_out else -15
                    break
                if self._retry(info):
                    continue
                code = self._failed(info)
                break
        except Exception as exc:  # noqa: BLE001 - the cluster went away: the run fails, it does not hang
            self.sink.write(f"[mltrain] lost the Ray job {self.sid}: {exc}\n".encode(), "stderr")
            code = 1
        self._code = code
        self._done.set()

    def _follow_attempt(self) -> Any:
        client = self.compute.client
        sid = self.sid
        watcher = threading.Thread(target=self._watch_start, args=(sid,), daemon=True)
        watcher.start()
        for _ in range(1000):
            try:
                asyncio.run(self._tail(client, sid))
            except Exception:  # noqa: BLE001 - the stream broke (node died, server restarted)
                pass
            if self.stream.exit_code is not None:  # the wrapper's last line: the job has nothing more to say
                self.stream.close()
                return None
            info = self._info(sid)
            if info is None or _status(info) in TERMINAL:
                break
            time.sleep(1)
            self.stream.replay()
        for _ in range(5 if info is not None else 0):
            if self.stream.exit_code is not None:
                break
            # the tail ended before the last lines (the job ended between two reads, the stream broke):
            # read the whole log (again, a little later, while the node's agent catches up)
            try:
                logs = client.get_job_logs(sid)
            except Exception:  # noqa: BLE001 - logs gone with the node
                break
            self.stream.replay()
            self.stream.feed(logs)
            if self.stream.exit_code is None:
                time.sleep(2)
        self.stream.close()
        return info

    async def _tail(self, client: JobSubmissionClient, sid: str) -> None:
        """Follow the job's log until the wrapper's exit code (its last line, after the outputs) or until
        Ray reports the job ended: Ray's log stream lags the job by seconds (it ends some seconds after
        the job did), so its status is polled alongside and the caller reads the rest of the log at once."""

        async def follow() -> None:
            async for chunk in client.tail_job_logs(sid):
                self.stream.feed(chunk)
                if self.stream.exit_code is not None:
                    return

        loop = asyncio.get_running_loop()
        tail = asyncio.ensure_future(follow())
        started = time.monotonic()
        while not tail.done():
            fast = time.monotonic() - started < STATUS_FAST_FOR_S
            await asyncio.wait({tail}, timeout=STATUS_POLL_S if fast else 1.0)
            if tail.done():
                break
            try:
                status = _status(await loop.run_in_executor(None, client.get_job_info, sid))
            except Exception:  # noqa: BLE001 - the tail decides
                continue
            if status in TERMINAL:
                tail.cancel()
                try:
                    await tail
                except asyncio.CancelledError:
                    pass
                return
        tail.result()

    def _info(self, sid: str) -> Any:
        for _ in range(5):
            try:
                return self.compute.client.get_job_info(sid)
            except Exception as exc:  # noqa: BLE001
                if "does not exist" in str(exc) or "404" in str(exc):
                    return None
                time.sleep(1)
        return None

    def _watch_start(self, sid: str) -> None:
        """Report the node the job runs on; stop a job that stays pending past start_timeout_s."""
        limit = self.compute.config.start_timeout_s
        started = time.monotonic()
        while not self._done.is_set() and sid == self.sid:
            info = self._info(sid)
            status = _status(info)
            if status == "RUNNING":
                node = str(getattr(info, "driver_agent_http_address", "") or "").split("://")[-1].rsplit(":", 1)[0]
                self.sink.log(f"Ray job {sid} runs on node {node or '?'}")
                return
            if not status or status in TERMINAL:
                return
            if limit is not None and time.monotonic() - started > limit:
                self.sink.write(
                    f"[mltrain] no node of the cluster could start Ray job {sid} within compute.start_timeout_s="
                    f"{limit:g} s (resources asked: {self.compute.resources_text()})\n".encode(),
                    "stderr",
                )
                self._timed_out = self._stop_requested = True
                self.compute.stop_job(sid)
                return
            time.sleep(1)

    def _retry(self, info: Any) -> bool:
        """Submit the next attempt when the node of this one died and retries are left."""
        if self._submit is None or info is None or _status(info) != "FAILED":
            return False
        if not _node_died(info):
            return False
        retries = self.compute.config.max_retries
        if self.attempt > retries:
            return False
        message = str(getattr(info, "message", "") or "").strip().splitlines()
        self.sink.log(
            f"Ray job {self.sid} was lost with its node ({message[0] if message else 'its supervisor died'}); "
            f"retry {self.attempt} of {retries}"
        )
        with self._lock:
            if self._stop_requested:
                return False
            self.attempt += 1
            self.stream = self._new_stream()
            self.streams.append(self.stream)
            self.compute.submit(self.sid, self._submit)
        return True

    def _failed(self, info: Any) -> int:
        status = _status(info)
        message = str(getattr(info, "message", "") or "").strip()
        if _node_died(info):
            retries = self.compute.config.max_retries
            what = f"the node running Ray job {self.sid} died"
            tried = f"after {self.attempt - 1} retr{'y' if self.attempt == 2 else 'ies'}" if self.attempt > 1 else ""
            reason = f"{what} {tried} (compute.max_retries={retries}): {message.splitlines()[0] if message else ''}"
        elif status == "FAILED":
            first = message.splitlines()[0] if message else "no reason given"
            reason = f"Ray job {self.sid} failed before its script ended: {first}"
        else:
            reason = f"Ray job {self.sid} ended ({status or 'gone'}) without an exit code"
        self.sink.write(f"[mltrain] {reason}\n".encode(), "stderr")
        code = getattr(info, "driver_exit_code", None)
        return int(code) if code not in (None, 0) else 1

    # -- the RunHandle contract ------------------------------------------------------------------
    def wait(self, timeout: float | None) -> int | None:
        if not self._done.wait(timeout):
            return None
        return self._code

    def cancel(self, reason: str, force: bool = False) -> None:
        self.cancel_reason = self.cancel_reason or reason
        with self._lock:
            if self._stop_requested or self._done.is_set():
                return
            self._stop_requested = True
            sid = self.sid
        threading.Thread(target=self._stop, args=(sid,), name="mltrain-ray-stop", daemon=True).start()

    def _stop(self, sid: str) -> None:
        """Ask Ray to stop ``sid`` until it takes the request or the job ended (a job just submitted may
        have no supervisor yet to take it)."""
        while not self.compute.stop_job(sid) and not self._done.wait(1.0):
            pass

    def read_metrics(self, limit: int = 8 << 20) -> bytes:
        return self.stream.read_metrics(limit)


class ClusterCompute(ComputeTarget):
    """Runs jobs on a Ray cluster."""

    name = "cluster"
    Config = ClusterComputeConfig
    builds = ("venv", "system")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        assert isinstance(self.config, ClusterComputeConfig)
        self.config: ClusterComputeConfig = self.config
        self._token: Token | None = None
        self._token_read = False
        self._api: str | None = None
        self._client: JobSubmissionClient | None = None
        self._lock = threading.Lock()
        self._stage_root: Path | None = None
        self._local = False  # holds the private cluster of compute.address=local
        self._warm: WarmPool | None = None  # a sweep's warm workers (prewarm)
        self._warm_connected = False  # a driver of the cluster for attach/stop of warm trials

    # -- the cluster ---------------------------------------------------------------------------
    @property
    def token(self) -> Token | None:
        if self.config.address == "local" and not self._token_read:
            self.api  # noqa: B018 - the private cluster's own token, not one found elsewhere
        if not self._token_read:
            self._token, self._token_read = find_token(self.config), True
        return self._token

    @property
    def api(self) -> str:
        """The job server's URL (asked of the cluster once for GCS and ray:// addresses)."""
        with self._lock:
            if self._api is None:
                if self.config.address == "local":
                    self._start_local()
                    assert self._api is not None
                    return self._api
                self._api = job_server_url(self.config.address, self.token, self.config.submit_timeout_s)
            return self._api

    def _start_local(self) -> None:
        """``address: local``: the process's private single-node cluster (started on first use) and its
        token (:mod:`mltrain.compute.ray_local`); released by :meth:`close`."""
        from mltrain.compute import ray_local

        local = ray_local.acquire(log=lambda line: print(f"[cluster] {line}", flush=True))
        self._local = True
        self._token, self._token_read = Token(local.token, "the private cluster (compute.address=local)"), True
        self._api = local.dashboard_url

    def _local_gone(self, ref: JobRef) -> bool:
        """A job of a private cluster (``address: local``) that is not this process's: it ended with
        the invocation that started that cluster, there is nothing left to attach to or stop."""
        if ref.get("address") != "local":
            return False
        from mltrain.compute import ray_local

        local = ray_local.current()
        return local is None or local.dashboard_url != ref.get("api")

    @property
    def client(self) -> JobSubmissionClient:
        api = self.api
        with self._lock:
            if self._client is None:
                probe(api, self.token, self.config.submit_timeout_s)
                self._client = job_client(api, self.token)
            return self._client

    def check(self) -> None:
        """Reaches the job server with our token (a clear error when refused), without importing Ray:
        the job client is made when first needed."""
        api = self.api
        check_address_env(api)
        probe(api, self.token, self.config.submit_timeout_s)

    def describe(self) -> str:
        return f"cluster ({self.config.address})"

    def resources_text(self) -> str:
        cfg = self.config
        parts = [f"num_cpus={cfg.num_cpus:g}"]
        if cfg.memory_gb:
            parts.append(f"memory_gb={cfg.memory_gb:g}")
        parts += [f"{k}={v:g}" for k, v in cfg.resources.items()]
        return ", ".join(parts)

    def per_run(self) -> dict[str, float]:
        """The Ray resources one run holds while it runs (its entrypoint's)."""
        cfg = self.config
        need = {"CPU": cfg.num_cpus, **cfg.resources}
        if cfg.memory_gb:
            need["memory"] = float(int(cfg.memory_gb * 1024**3))
        return {k: v for k, v in need.items() if v > 0}

    def capacity(self) -> int | None:
        """How many runs the cluster's alive nodes hold at once with these resources per run (Ray's
        State API); None when a run asks for no resource. A launcher runs at most
        ``min(max_concurrent_runs, capacity())`` trials at a time; more would wait, pending, in Ray."""
        import json
        import urllib.request

        from mltrain.compute.cluster_auth import headers

        need = self.per_run()
        if not need:
            return None
        req = urllib.request.Request(f"{self.api}/api/v0/nodes?limit=10000&detail=false", headers=headers(self.token))
        try:
            with urllib.request.urlopen(req, timeout=self.config.submit_timeout_s) as resp:  # noqa: S310
                nodes = json.loads(resp.read())["data"]["result"]["result"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ComputeError(f"cannot read the nodes of the Ray cluster at {self.api}: {exc}") from exc
        total = 0
        for node in nodes:
            if node.get("state") != "ALIVE":
                continue
            have = node.get("resources_total") or {}
            total += min(int(float(have.get(k, 0)) // v) for k, v in need.items())
        return total

    # -- environment and snapshot --------------------------------------------------------------
    def builder(self, env: ResolvedEnvironment) -> EnvironmentBuilder:
        from mltrain.environments.ray_runtime import RayRuntimeEnvBuilder

        builder = RayRuntimeEnvBuilder(where=f"ray:{self.config.address}")
        builder.check(env)
        return builder

    def prepare(self, ws: Workspace, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        from mltrain.environments.base import record_use

        built = self.builder(env).materialise(env, log, rebuild=rebuild)
        record_use(ws, env, built)
        return built

    def _stage(self, snapshot_id: str) -> Path:
        from mltrain.workspace.blobs import check_sha256

        check_sha256(snapshot_id)  # a folder name: never a path
        with self._lock:
            if self._stage_root is None:
                self._stage_root = Path(tempfile.mkdtemp(prefix="mltrain-ray-"))
            return self._stage_root / snapshot_id

    def upload(self, ws: Workspace, spec: RunSpec) -> None:
        """The snapshot into a staging folder (the job's working_dir, shared by a sweep's trials);
        the local run folder receives only what comes back."""
        stage = self._stage(spec.snapshot_id)
        if stage.is_dir():
            return
        scratch = stage.with_name(f".{stage.name}-{secrets.token_hex(4)}")
        ws.snapshots.restore(spec.snapshot_id, scratch)
        try:
            scratch.rename(stage)
        except OSError:  # another trial staged it meanwhile
            shutil.rmtree(scratch, ignore_errors=True)

    # -- jobs ----------------------------------------------------------------------------------
    def _runtime_env(self, spec: RunSpec, env: Materialised, env_vars: dict[str, str]) -> dict[str, Any]:
        """The runtime_env of a run: the environment's packages, the staged snapshot as working_dir, the
        in-script API (and the job wrapper) as py_modules, the environment variables (``env_vars`` last)."""
        from mltrain.environments.ray_runtime import packages_field
        from mltrain.environments.shim import REMOTE_FILES, SHIM_FILES, ensure_shim

        cfg = self.config
        stage = self._stage(spec.snapshot_id)
        if not stage.is_dir():
            raise ComputeError(f"the snapshot of run {spec.run_id} was not staged", hint="call upload() before start()")
        shim = ensure_shim(SHIM_FILES + REMOTE_FILES)  # the API, the job wrapper and the warm workers
        extra = dict(cfg.runtime_env)
        merged = {str(k): str(v) for k, v in dict(extra.pop("env_vars", None) or {}).items()}
        merged.update(env.env_vars)
        merged.update(spec.env_vars)
        merged.update(env_vars)
        return {
            **extra,
            "working_dir": str(stage),
            "py_modules": [*list(extra.pop("py_modules", None) or []), str(shim / "mltrain")],
            "env_vars": merged,
            **packages_field(env.location, cfg.installer),
        }

    def _submit_args(self, spec: RunSpec, env: Materialised, mark: str) -> dict[str, Any]:
        cfg = self.config
        runtime_env = self._runtime_env(
            spec,
            env,
            {
                "MLTRAIN_RUN_ID": spec.run_id,
                "MLTRAIN_EXPERIMENT": spec.experiment,
                "PYTHONUNBUFFERED": "1",
                MARK_ENV: mark,
                GRACE_ENV: f"{self.cancel_grace_s:g}",
                MAX_OUTPUT_ENV: f"{cfg.max_output_mb:g}",
                # Ray's stop: SIGINT to the processes it sees, which the wrapper alone acts on (the
                # script has it blocked); SIGKILL after this (the wrapper ends sooner)
                "RAY_JOB_STOP_SIGNAL": "SIGINT",
                "RAY_JOB_STOP_WAIT_TIME_S": str(math.ceil(self.cancel_grace_s) + STOP_MARGIN_S),
            },
        )
        return {
            "entrypoint": entrypoint(spec.script, spec.arguments),
            "runtime_env": runtime_env,
            "metadata": {"mltrain_run_id": spec.run_id, "mltrain_experiment": spec.experiment},
            **{f"entrypoint_{k}": v for k, v in self._resources().items()},
        }

    def _resources(self) -> dict[str, Any]:
        """A run's Ray resources, as an actor's options name them (a job's: ``entrypoint_`` + name)."""
        cfg = self.config
        options: dict[str, Any] = {"num_cpus": cfg.num_cpus}
        if cfg.memory_gb:
            options["memory"] = int(cfg.memory_gb * 1024**3)
        if cfg.resources:
            options["resources"] = dict(cfg.resources)
        return options

    def _actor_options(self, spec: RunSpec, env: Materialised) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Ray options of a warm worker (a run's resources; the trial's own variables come with each
        trial), and what a :class:`~mltrain.remote.ray_boot.BootedWarmWorker` is given when the run
        needs no runtime_env but its snapshot, the API and variables: those as archives and a dict.
        Otherwise (None) the options hold the run's runtime_env."""
        runtime_env = self._runtime_env(spec, env, {"PYTHONUNBUFFERED": "1"})
        options = self._resources()
        if set(runtime_env) <= {"working_dir", "py_modules", "env_vars"} and len(runtime_env["py_modules"]) == 1:
            api = str(Path(runtime_env["py_modules"][0]).parent)  # the folder holding the API's mltrain/
            boot = {"api": pack_dir(api), "snapshot": pack_dir(runtime_env["working_dir"])}
            return options, {**boot, "env_vars": runtime_env["env_vars"]}
        # an actor's runtime_env takes package URIs only: uploaded as submit_job does (content-addressed,
        # so a package a job of the run already uploaded is not sent again)
        try:
            self.client._upload_working_dir_if_needed(runtime_env)  # noqa: SLF001 - the Jobs SDK's own upload
            self.client._upload_py_modules_if_needed(runtime_env)  # noqa: SLF001
        except Exception as exc:  # noqa: BLE001 - requests/ray errors of the job server
            raise ComputeError(f"cannot upload the run's working_dir to the Ray cluster: {exc}") from exc
        return {**options, "runtime_env": runtime_env}, None

    def submit(self, sid: str, args: dict[str, Any]) -> None:
        try:
            self.client.submit_job(submission_id=sid, **args)
        except ComputeError:
            raise
        except Exception as exc:  # noqa: BLE001 - RuntimeError/ValueError/requests errors of the job server
            raise ComputeError(
                f"the Ray cluster did not accept job {sid}: {exc}",
                hint="check compute.runtime_env and the resources asked for",
            ) from exc

    def prewarm(self, env: Materialised, spec: RunSpec, modules: list[str], workers: int) -> bool:
        """Start ``workers`` warm actors for later runs of ``env`` and ``spec``'s snapshot
        (:mod:`mltrain.compute.cluster_warm`): this process connects to the cluster now, the actors
        start with the first run (they need its staged snapshot). Each run is then forked by an idle
        actor instead of being a Ray job of its own."""
        with self._lock:
            if self._warm is None:
                self._warm = WarmPool(self, (env.hash, spec.snapshot_id), modules, workers)
                return True
            return self._warm.key == (env.hash, spec.snapshot_id)

    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        pool = self._warm
        if pool is not None and pool.key == (env.hash, spec.snapshot_id):
            pool.provide(lambda: self._actor_options(spec, env))
            slot = pool.acquire()
            if slot is not None:
                # a warm trial whose node dies is retried as a Ray job (its second attempt)
                handle = start_trial(self, pool, slot, spec, sink, retry=lambda: self._start_job(spec, env, sink, 2))
                if handle is not None:
                    return handle
            elif pool.broken:
                sink.log(f"no warm Ray workers ({pool.broken}): the run is a Ray job of its own")
        elif pool is not None:
            pool.retire()  # another environment or snapshot: its actors would hold the resources jobs need
        return self._start_job(spec, env, sink, 1)

    def _start_job(self, spec: RunSpec, env: Materialised, sink: OutputSink, attempt: int) -> ClusterHandle:
        """Submit ``attempt`` of the run as a Ray job (later attempts follow when its node dies)."""
        mark = f"\x1emltrain:{secrets.token_hex(6)}:"
        job = f"mltrain-{spec.run_id}"
        args = self._submit_args(spec, env, mark)
        self.submit(f"{job}-{attempt}", args)
        return ClusterHandle(spec, self, job, mark, sink, attempt=attempt, submit=args)

    def stop_job(self, sid: str) -> bool:
        """Ask Ray to stop ``sid`` (SIGTERM to its processes); False when it was not running."""
        try:
            return bool(self.client.stop_job(sid))
        except Exception:  # noqa: BLE001 - gone already
            return False

    def _attempts(self, job: str) -> list[tuple[str, str]]:
        """``(submission id, status)`` of each attempt of ``job`` the cluster still knows."""
        out = []
        for n in range(1, 1000):
            sid = f"{job}-{n}"
            try:
                info = self.client.get_job_info(sid)
            except Exception:  # noqa: BLE001 - no such job: no later attempt either
                break
            out.append((sid, _status(info)))
        return out

    def _for_ref(self, ref: JobRef) -> ClusterCompute:
        """This target, or one of the cluster the job ran on when that is another."""
        api = ref.get("api")
        if not api or api == self._api or (self._api is None and ref.get("address") == self.config.address):
            return self
        options = {k: getattr(self.config, k) for k in ("token", "token_file", "token_env", "cancel_grace_s")}
        return ClusterCompute(address=str(api), **options)

    def _warm_actor(self, ref: JobRef) -> tuple[Any, dict[str, Any] | None]:
        """The warm actor of a warm trial's reference and what it says of the trial (None, None: gone)."""
        import ray

        with self._lock:
            if not self._warm_connected:
                connect(str(ref["gcs"]), self.token)
                self._warm_connected = True
        try:
            with session():
                actor = ray.get_actor(str(ref["actor"]), namespace=str(ref.get("namespace") or NAMESPACE))
            return actor, call(actor.status, str(ref["run"]), timeout=60)
        except Exception:  # noqa: BLE001 - ValueError: no such actor (it ended); RayActorError: it died
            return None, None

    def attach(self, ref: JobRef, spec: RunSpec, sink: OutputSink) -> RunHandle | None:
        if self._local_gone(ref):
            return None
        if "actor" in ref:
            actor, status = self._warm_actor(ref)
            if status is None:
                return None
            return WarmHandle(spec, ref, actor, sink, grace_s=self.cancel_grace_s)
        compute = self._for_ref(ref)
        attempts = compute._attempts(str(ref["job"]))
        if not attempts:
            return None
        return ClusterHandle(spec, compute, str(ref["job"]), str(ref["mark"]), sink, len(attempts), submit=None)

    def stop(self, ref: JobRef, grace_s: float | None = None) -> bool:
        """Stop every running attempt of the job and wait until Ray reports it ended. (The grace
        period is the one the job was submitted with: Ray cannot change it afterwards.)"""
        if self._local_gone(ref):
            return False
        if "actor" in ref:
            return self._stop_warm(ref, grace_s)
        compute = self._for_ref(ref)
        running = [sid for sid, status in compute._attempts(str(ref["job"])) if status not in TERMINAL]
        taken = {sid: compute.stop_job(sid) for sid in running}
        deadline = time.monotonic() + math.ceil(self.cancel_grace_s) + STOP_MARGIN_S + 60
        for sid in running:
            while time.monotonic() < deadline:
                try:
                    if _status(compute.client.get_job_info(sid)) in TERMINAL:
                        break
                except Exception:  # noqa: BLE001 - gone
                    break
                taken[sid] = taken[sid] or compute.stop_job(sid)  # a job just submitted may have no supervisor yet
                time.sleep(0.5)
        return bool(running)

    def _stop_warm(self, ref: JobRef, grace_s: float | None) -> bool:
        actor, status = self._warm_actor(ref)
        if status is None or status.get("exit") is not None:
            return False
        grace = self.cancel_grace_s if grace_s is None else grace_s
        try:
            return bool(call(actor.stop, str(ref["run"]), grace, int(signal.SIGTERM), True, timeout=grace * 3 + 60))
        except Exception as exc:  # noqa: BLE001
            raise ComputeError(f"cannot stop run {ref['run']} on its warm Ray worker {ref['actor']}: {exc}") from None

    def collect(self, spec: RunSpec, handle: RunHandle) -> None:
        """Unpack the outputs archive the job sent through its log (or a warm trial's actor keeps) into
        the run folder."""
        if isinstance(handle, WarmHandle):
            if handle.inner is None:
                handle.collect(self.config.max_output_mb)
                return
            handle = handle.inner  # retried as a Ray job
        if not isinstance(handle, ClusterHandle):
            return
        handle.wait(60)
        stream = handle.stream
        if stream.archive_ok:
            try:
                extract_outputs(stream.archive_path, spec.run_dir, self.config.max_output_mb)
            finally:
                stream.archive_path.unlink(missing_ok=True)
        elif stream.problem:
            raise ComputeError(stream.problem)
        for old in handle.streams:
            old.archive_path.unlink(missing_ok=True)

    def cleanup(self, spec: RunSpec, handle: RunHandle | None) -> None:
        """Delete the run's Ray jobs (unless ``keep_job``). The job of a run whose exit code came back may
        still be ending: it gets ``JOB_END_WAIT_S`` to end by itself, then it is stopped."""
        if isinstance(handle, WarmHandle):
            handle.forget()
            if handle.inner is None:
                return
            handle = handle.inner  # retried as a Ray job
        if self.config.keep_job or self._client is None:
            return
        job = handle.job if isinstance(handle, ClusterHandle) else f"mltrain-{spec.run_id}"
        compute = handle.compute if isinstance(handle, ClusterHandle) else self
        try:
            attempts = compute._attempts(job)
            deadline = time.monotonic() + JOB_END_WAIT_S
            while any(status not in TERMINAL for _, status in attempts) and time.monotonic() < deadline:
                time.sleep(0.2)  # the wrapper sent its exit code: the job ends by itself in a moment
                attempts = compute._attempts(job)
            if any(status not in TERMINAL for _, status in attempts):
                compute.stop({"job": job, "api": compute._api})
            for sid, _ in attempts:
                try:
                    compute.client.delete_job(sid)
                except Exception:  # noqa: BLE001 - already deleted
                    pass
        except ComputeError:
            pass

    def close(self) -> None:
        with self._lock:
            warm, self._warm = self._warm, None
            connected, self._warm_connected = self._warm_connected, False
        if warm is not None:
            warm.close()
        if connected:
            disconnect()
        with self._lock:
            if self._stage_root is not None:
                shutil.rmtree(self._stage_root, ignore_errors=True)
                self._stage_root = None
            local, self._local = self._local, False
            if local:
                self._client = self._api = None
        if local:
            from mltrain.compute import ray_local

            ray_local.release()
