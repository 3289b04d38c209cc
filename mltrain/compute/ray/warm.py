"""Runs forked by warm actors on a Ray cluster: :class:`WarmWorkers` (the executor of a target) and
:class:`WarmHandle` (one trial).

``prewarm`` makes a :class:`~mltrain.compute.ray.warm_pool.WarmPool`: this process connects to the
cluster as a Ray driver (:mod:`~mltrain.compute.ray.driver`) and starts ``workers`` actors. A trial
then takes an idle actor, which forks it as an isolated process group in a fresh run folder on its
node; a :class:`WarmHandle` follows it (long polls of new stdout, stderr and metrics bytes), cancels
it through the actor, and ``collect`` fetches its outputs archive (checked as a job's is).

With an object-store artifact root that signs URLs a warm trial takes the direct path a Ray job takes
(:mod:`~mltrain.compute.ray.jobs`): the actors get the snapshot's signed list, not the snapshot, and
each node fetches it from the store into its cache (once); a node that cannot gets it carried through
Ray's object store (:meth:`WarmWorkers._carry`, then every actor at once, as later jobs carry it). The
trial's outputs/ and logs/ go into the store by a presigned POST policy of the run's staging prefix,
which ``collect`` adopts as a job's (:func:`~mltrain.compute.node_outputs.adopt_posted`); only the rest
comes through the actor.

A warm trial's reference is ``{"kind": "ray", "address", "api", "gcs", "namespace", "actor", "run",
"pgid"}``: any process reaches the actor by name and asks it about the trial (attach, stop).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.archive import extract_outputs
from mltrain.compute.base import JobRef, OutputSink, RunHandle, RunSpec, node_label
from mltrain.compute.node_outputs import adopt_posted, signed_policy
from mltrain.compute.ray.driver import NAMESPACE, call, connect, disconnect, send, session
from mltrain.compute.ray.runtime import Stage, resources, runtime_env, stage_key
from mltrain.compute.ray.stream import ArchiveFile, too_large
from mltrain.compute.ray.warm_pool import Slot, WarmPool
from mltrain.errors import ComputeError
from mltrain.remote.ray_boot import pack_dir
from mltrain.text import fmt_bytes

if TYPE_CHECKING:
    from mltrain.compute.ray.connection import RayConnection
    from mltrain.environments.base import Materialised
    from mltrain.workspace.blobs import BlobStore


POLL_S = 1.0  # longest wait of one poll (it answers as soon as there is output or the trial ended)
UNAVAILABLE_S = 120.0  # longest an actor may stay unavailable (its node dying, a network blip) before it is lost


class WarmHandle(RunHandle):
    """A trial forked by a warm actor; a thread follows it with long polls. With ``pool`` (the driver
    that started it) the actor is released once the trial ended and its output was read. When the
    actor dies with its node and ``retries`` > 0, ``retry()`` runs the trial again as a Ray job
    (``inner``), which this handle then follows and passes calls to. ``direct``: the store and staging
    prefix its node uploads outputs/ and logs/ into itself (:func:`~mltrain.compute.node_outputs.signed_policy`)."""

    def __init__(
        self,
        spec: RunSpec,
        ref: JobRef,
        actor: Any,
        sink: OutputSink,
        pool: WarmPool | None = None,
        slot: Slot | None = None,
        grace_s: float = 5.0,
        retry: Callable[[], RunHandle] | None = None,
        retries: int = 0,
        max_output_mb: float = 1024.0,
        direct: tuple[BlobStore, str] | None = None,
    ) -> None:
        super().__init__(spec)
        self.direct = direct
        self.grace_s, self.max_output_mb = grace_s, max_output_mb
        self._ref = ref
        self.actor = actor
        self.sink = sink
        self.pool, self.slot = pool, slot
        self.run = str(ref["run"])
        self.outputs: dict[str, Any] | None = None
        self.problem: str | None = None
        self.inner: RunHandle | None = None
        self._retry, self._retries = retry, retries
        self._code: int | None = None
        self._done = threading.Event()
        self._metrics = bytearray()
        self._mlock = threading.Lock()
        self._stop_sent = False
        self._thread = threading.Thread(target=self._follow, name="mltrain-ray-warm", daemon=True)
        self._thread.start()

    @property
    def ref(self) -> JobRef:
        inner = self.inner
        return inner.ref if inner is not None else self._ref

    @property
    def attempt(self) -> int:  # type: ignore[override]
        inner = self.inner
        return inner.attempt if inner is not None else 1

    def _follow(self) -> None:
        code = self._follow_actor()
        if code is None:  # the actor died with its node: the trial runs again as a Ray job
            code = self._follow_retry()
        self._code = code
        self._done.set()

    def _follow_actor(self) -> int | None:
        """The trial's exit code as its actor tells it; None when the actor died and a retry is due."""
        offsets = [0, 0, 0]
        code: int | None = 1
        unavailable: float | None = None
        try:
            while True:
                try:
                    answer = call(self.actor.poll, self.run, offsets, POLL_S)
                except Exception as exc:  # noqa: BLE001 - unavailable: its node may be dying, or recover
                    now = time.monotonic()
                    unavailable = unavailable or now
                    if not _actor_unavailable(exc) or now - unavailable > UNAVAILABLE_S:
                        raise
                    time.sleep(1.0)  # polls are idempotent: ask again until Ray says it lives or died
                    continue
                unavailable = None
                if answer is None:
                    self.sink.write(
                        f"[mltrain] the warm Ray worker no longer knows run {self.run}\n".encode(), "stderr"
                    )
                    break
                out, err, metrics = answer["data"]
                if out:
                    self.sink.write(out, "stdout")
                if err:
                    self.sink.write(err, "stderr")
                if metrics:
                    with self._mlock:
                        self._metrics += metrics
                offsets = [o + len(d) for o, d in zip(offsets, answer["data"], strict=True)]
                if answer["exit"] is not None and answer["eof"]:
                    code = int(answer["exit"])
                    self.outputs = answer["outputs"]
                    break
        except Exception as exc:  # noqa: BLE001 - the actor (or its node) died, the cluster went away
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.problem = f"the warm Ray worker running this run was lost: {first}"
            if self.pool is not None and self.slot is not None:
                self.pool.lost(self.slot)
            if _actor_died(exc) and self._retry is not None and self._retries > 0 and self.cancel_reason is None:
                self.sink.log(f"{self.problem}; retry 1 of {self._retries}, as a Ray job")
                code = None
            else:
                died = "died" if _actor_died(exc) else "was lost"
                retries = f"compute.max_retries={self._retries}"
                self.lost_reason = f"the warm Ray worker running this run {died} ({retries}): {first}"
                self.sink.write(f"[mltrain] {self.lost_reason}\n".encode(), "stderr")
                code = 1
        if self.pool is not None and self.slot is not None:
            self.pool.release(self.slot)
        return code

    def _follow_retry(self) -> int:
        assert self._retry is not None
        try:
            inner = self._retry()
        except Exception as exc:  # noqa: BLE001 - the job server refused the job: the run fails with why
            self.lost_reason = f"the retry of this run as a Ray job failed: {exc}"
            self.sink.write(f"[mltrain] {self.lost_reason}\n".encode(), "stderr")
            return 1
        with self._mlock:
            self.inner = inner
            reason = self.cancel_reason
        if reason is not None:  # canceled while the retry was submitted
            inner.cancel(reason)
        code = inner.wait(None)
        self.lost_reason = inner.lost_reason
        return 1 if code is None else code

    def wait(self, timeout: float | None) -> int | None:
        if not self._done.wait(timeout):
            return None
        return self._code

    def cancel(self, reason: str, force: bool = False) -> None:
        with self._mlock:
            self.cancel_reason = self.cancel_reason or reason
            inner = self.inner
        if inner is not None:
            inner.cancel(reason, force)
            return
        if self._done.is_set():
            return
        if force:
            send(self.actor.signal, self.run, int(signal.SIGKILL))
        elif not self._stop_sent:
            self._stop_sent = True
            send(self.actor.stop, self.run, self.grace_s, int(signal.SIGINT), False)

    def read_metrics(self, limit: int = 8 << 20) -> bytes:
        with self._mlock:
            data = bytes(self._metrics[:limit])
            del self._metrics[:limit]
            inner = self.inner
        if not data and inner is not None:
            return inner.read_metrics(limit)
        return data

    def collect(self) -> None:
        """Fetch the trial's outputs archive from its actor into the run folder (checked, then unpacked)
        and adopt what its node uploaded into the artifact root itself; a trial retried as a Ray job
        collects as that job does."""
        if self.inner is not None:
            try:
                self.inner.collect()
            finally:
                self.stored.update(self.inner.stored)
                self.received = self.inner.received
            return
        max_output_mb = self.max_output_mb
        self.wait(60)
        if self.problem and self.outputs is None:
            raise ComputeError(self.problem)
        outputs = self.outputs or {}
        for line in outputs.get("said") or []:
            self.sink.log(str(line))
        if outputs.get("stored") and self.direct is None:  # this process did not sign the trial's policy
            self.sink.log(
                f"the node of warm Ray worker {self._ref['actor']} uploaded {len(outputs['stored'])} output files "
                "into the artifact root, but this process did not start the run, so cannot check them: "
                "all come through the worker"
            )
            try:
                outputs = call(self.actor.repack, self.run)
            except Exception as exc:  # noqa: BLE001 - the actor went away meanwhile
                raise ComputeError(f"cannot fetch the run's outputs from its warm Ray worker: {exc}") from None
        if "too_large" in outputs:
            raise ComputeError(too_large(int(outputs["too_large"]), f"{max_output_mb:g}"))
        if outputs.get("size"):
            self._fetch(outputs)
        if outputs.get("stored"):
            label = f"the node of warm Ray worker {self._ref['actor']}"
            rest = f"{fmt_bytes(self.received)} through the worker"
            say = self.sink.log
            self.stored.update(
                adopt_posted(self.direct, outputs["stored"], self.spec.run_dir, label, max_output_mb, say, rest)
            )

    def _fetch(self, outputs: dict[str, Any]) -> None:
        """The outputs archive ``outputs`` names, from the actor into the run folder (checked, then unpacked)."""
        max_output_mb = self.max_output_mb
        path = self.spec.run_dir / ".mltrain" / "ray-outputs-warm.tar.gz"
        archive = ArchiveFile(path)
        try:
            offset = 0
            while offset < int(outputs["size"]):
                piece = call(self.actor.archive, self.run, offset)
                if not piece:
                    break
                archive.write(piece)
                offset += len(piece)
            self.received = offset
            problem = archive.finish(str(outputs["sha256"]), int(outputs["size"]))
            if problem:
                raise ComputeError(problem)
            extract_outputs(path, self.spec.run_dir, max_output_mb)
        except ComputeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the actor went away meanwhile
            raise ComputeError(f"cannot fetch the run's outputs from its warm Ray worker: {exc}") from None
        finally:
            archive.close()
            path.unlink(missing_ok=True)

    def cleanup(self) -> None:
        """The actor drops the trial's run folder and files (a retry's Ray job is deleted)."""
        try:
            call(self.actor.forget, self.run, timeout=30)
        except Exception:  # noqa: BLE001 - the actor is gone, and its files with it
            pass
        if self.inner is not None:
            self.inner.cleanup()


def _actor_unavailable(exc: BaseException) -> bool:
    try:
        from ray.exceptions import ActorUnavailableError
    except ImportError:
        return False
    return isinstance(exc, ActorUnavailableError)


def _actor_died(exc: BaseException) -> bool:
    try:
        from ray.exceptions import ActorDiedError
    except ImportError:
        return False
    return isinstance(exc, ActorDiedError)


class WarmWorkers:
    """The warm-actor executor of a target on the cluster of ``conn``: its pool once ``prewarm`` made
    one; attach and stop reach a warm trial's actor by name, from any process. ``direct``: the runs whose
    node uploads outputs/ and logs/ into this store itself (shared with the target's Ray jobs)."""

    def __init__(self, conn: RayConnection, stage: Stage, direct: dict[str, BlobStore] | None = None) -> None:
        self.conn, self.stage = conn, stage
        self.direct = direct if direct is not None else {}
        self.pool: WarmPool | None = None
        self.light = False  # the pool's actors got the snapshot's signed list, not the snapshot
        self._carried: set[str] = set()  # the actors the snapshot was carried to
        self._carried_ref: Any = None  # the staged snapshot in Ray's object store, once a node could not fetch it
        self._connected = False  # a driver of the cluster for attach/stop of warm trials
        self._lock = threading.Lock()

    def prewarm(self, env: Materialised, spec: RunSpec, modules: list[str], workers: int) -> bool:
        """Start ``workers`` warm actors for later runs of ``env`` and ``spec``'s snapshot: this process
        connects to the cluster now, the actors start with the first run (they need its staged
        snapshot). False when the pool serves another environment or snapshot."""
        with self._lock:
            if self.pool is None:
                key = (env.hash, stage_key(spec))
                self.pool = WarmPool(self.conn, self.conn.config.cancel_grace_s, key, modules, workers)
                return True
            return self.pool.key == (env.hash, stage_key(spec))

    def actor_options(self, spec: RunSpec, env: Materialised) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Ray options of a warm worker (a run's resources; the trial's own variables come with each
        trial), and what a :class:`~mltrain.remote.ray_boot.BootedWarmWorker` is given when the run
        needs no runtime_env but its snapshot, the API and variables: those as archives and a dict.
        Otherwise (None) the options hold the run's runtime_env."""
        renv = runtime_env(self.conn.config, self.stage, spec, env, {"PYTHONUNBUFFERED": "1"}, light=True)
        self.light = self.stage.light(spec)
        options = resources(self.conn.config)
        if set(renv) <= {"working_dir", "py_modules", "env_vars"} and len(renv["py_modules"]) == 1:
            api = str(Path(renv["py_modules"][0]).parent)  # the folder holding the API's mltrain/
            boot = {"api": pack_dir(api), "snapshot": pack_dir(renv["working_dir"])}
            return options, {**boot, "env_vars": renv["env_vars"]}
        # an actor's runtime_env takes package URIs only: uploaded as submit_job does (content-addressed,
        # so a package a job of the run already uploaded is not sent again)
        client = self.conn.client
        try:
            client._upload_working_dir_if_needed(renv)  # noqa: SLF001 - the Jobs SDK's own upload
            client._upload_py_modules_if_needed(renv)  # noqa: SLF001
        except Exception as exc:  # noqa: BLE001 - requests/ray errors of the job server
            raise ComputeError(f"cannot upload the run's working_dir to the Ray cluster: {exc}") from exc
        return {**options, "runtime_env": renv}, None

    def start(
        self, spec: RunSpec, env: Materialised, sink: OutputSink, retry: Callable[[], RunHandle]
    ) -> WarmHandle | None:
        """The run forked by an idle actor of the pool; None when it runs as a Ray job instead (no pool,
        another environment or snapshot, or the pool cannot serve). Should the actor die with its node,
        ``retry`` starts the run again (``compute.max_retries``)."""
        pool = self.pool
        if pool is None:
            return None
        if pool.key != (env.hash, stage_key(spec)):
            pool.retire()  # another environment or snapshot: its actors would hold the resources jobs need
            return None
        pool.provide(lambda: self.actor_options(spec, env))
        slot = pool.acquire()
        if slot is None:
            if pool.broken:
                sink.log(f"no warm Ray workers ({pool.broken}): the run is a Ray job of its own")
            return None
        return self._fork(pool, slot, spec, sink, retry)

    def _fork(
        self, pool: WarmPool, slot: Slot, spec: RunSpec, sink: OutputSink, retry: Callable[[], RunHandle]
    ) -> WarmHandle | None:
        """Fork ``spec`` on ``slot``'s actor; None when the actor cannot (it is then dropped)."""
        env_vars = {
            **spec.env_vars,
            "MLTRAIN_RUN_ID": spec.run_id,
            "MLTRAIN_EXPERIMENT": spec.experiment,
            "PYTHONUNBUFFERED": "1",
        }
        cfg = self.conn.config
        signed = signed_policy(self.direct.get(spec.run_id), spec.run_id, cfg.max_output_mb, cfg.signed_url_expires_s)
        try:
            info = self._start_trial(slot, spec, env_vars, None if signed is None else signed[1], sink)
        except Exception as exc:  # noqa: BLE001 - the actor died: the trial runs as a job
            sink.log(f"the warm Ray worker {slot.name} could not start the run ({exc}); it runs as a Ray job")
            pool.lost(slot)
            pool.release(slot)
            return None
        ip, node_id = str(info.get("node_ip") or ""), str(info.get("node_id") or "")
        node = node_label(ip or str(info.get("host") or slot.host or "?"), node_id)
        for line in info.get("said") or []:
            sink.log(str(line))
        sink.log(f"run forked by warm Ray worker {slot.name} on node {node}")
        ref = {
            "kind": "ray",
            "address": cfg.address,
            "api": self.conn.api,
            "gcs": pool.gcs,
            "namespace": NAMESPACE,
            "actor": slot.name,
            "run": spec.run_id,
            "pgid": int(info["pid"]),
            "node": node,
            "node_ip": ip,
            "node_id": node_id,
        }
        return WarmHandle(
            spec,
            ref,
            slot.actor,
            sink,
            pool,
            slot,
            cfg.cancel_grace_s,
            retry,
            cfg.max_retries,
            cfg.max_output_mb,
            direct=None if signed is None else signed[0],
        )

    def _start_trial(
        self, slot: Slot, spec: RunSpec, env_vars: dict[str, str], policy: dict[str, Any] | None, sink: OutputSink
    ) -> dict[str, Any]:
        """The actor's answer to starting ``spec`` (:meth:`mltrain.remote.ray_warm.WarmWorker.start`); when its
        node cannot fetch the snapshot from the artifact root, the snapshot is carried to it first."""
        if self.light and not self.stage.light(spec):  # a node could not fetch it: carried to every actor now
            self._carry(slot, spec)
        args = (spec.run_id, spec.experiment, spec.script, spec.arguments, env_vars, policy)
        info = call(slot.actor.start, *args)
        if "unreachable" in info:
            sink.log(
                f"the node of warm Ray worker {slot.name} could not fetch the snapshot from the artifact root "
                f"itself ({info['unreachable']}): it is carried to the worker"
            )
            self.stage.carried(spec)
            self._carry(slot, spec)
            info = call(slot.actor.start, *args)
        if "unreachable" in info:
            raise ComputeError(f"the snapshot carried to it was not taken: {info['unreachable']}")
        return dict(info)

    def _carry(self, slot: Slot, spec: RunSpec) -> None:
        """Send ``slot``'s actor the staged snapshot (once; put into Ray's object store once for all actors)."""
        import ray

        with self._lock:
            if slot.name in self._carried:
                return
            if self._carried_ref is None:
                with session():
                    self._carried_ref = ray.put(pack_dir(str(self.stage.folder(spec))))
            ref = self._carried_ref
        call(slot.actor.carry, ref)
        with self._lock:
            self._carried.add(slot.name)

    @staticmethod
    def made(ref: JobRef) -> bool:
        """True when ``ref`` is a warm trial's (it names its actor)."""
        return "actor" in ref

    def _actor(self, ref: JobRef) -> tuple[Any, dict[str, Any] | None]:
        """The warm actor of a warm trial's reference and what it says of the trial (None, None: gone)."""
        import ray

        with self._lock:
            if not self._connected:
                connect(str(ref["gcs"]), self.conn.token, self.conn.config.connect_timeout_s)
                self._connected = True
        try:
            with session():
                actor = ray.get_actor(str(ref["actor"]), namespace=str(ref.get("namespace") or NAMESPACE))
            return actor, call(actor.status, str(ref["run"]), timeout=60)
        except Exception:  # noqa: BLE001 - ValueError: no such actor (it ended); RayActorError: it died
            return None, None

    def attach(self, ref: JobRef, spec: RunSpec, sink: OutputSink) -> RunHandle | None:
        actor, status = self._actor(ref)
        if status is None:
            return None
        cfg = self.conn.config
        return WarmHandle(spec, ref, actor, sink, grace_s=cfg.cancel_grace_s, max_output_mb=cfg.max_output_mb)

    def stop(self, ref: JobRef, grace_s: float | None) -> bool:
        actor, status = self._actor(ref)
        if status is None or status.get("exit") is not None:
            return False
        grace = self.conn.config.cancel_grace_s if grace_s is None else grace_s
        try:
            return bool(call(actor.stop, str(ref["run"]), grace, int(signal.SIGTERM), True, timeout=grace * 3 + 60))
        except Exception as exc:  # noqa: BLE001
            raise ComputeError(f"cannot stop run {ref['run']} on its warm Ray worker {ref['actor']}: {exc}") from None

    def close(self) -> None:
        """Kill the pool's actors; end this process's driver connection made for attach/stop."""
        with self._lock:
            pool, self.pool = self.pool, None
            connected, self._connected = self._connected, False
            self._carried_ref, self._carried = None, set()
        if pool is not None:
            pool.close()
        if connected:
            disconnect()
