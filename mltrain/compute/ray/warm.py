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
"pgid", "staging"?}``: any process reaches the actor by name and asks it about the trial (attach, stop).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.base import JobRef, OutputSink, RunHandle, RunSpec, node_label
from mltrain.compute.node_outputs import signed_policy, staging_of
from mltrain.compute.ray.driver import NAMESPACE, call, connect, disconnect, session
from mltrain.compute.ray.runtime import Stage, resources, runtime_env, stage_key
from mltrain.compute.ray.warm_pool import Slot, WarmPool
from mltrain.compute.ray.warm_trial import WarmHandle
from mltrain.errors import ComputeError
from mltrain.remote.ray_boot import pack_dir

if TYPE_CHECKING:
    from mltrain.compute.ray.connection import RayConnection
    from mltrain.environments.base import Materialised
    from mltrain.workspace.blobs import BlobStore


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
        if signed is not None:
            ref["staging"] = signed[0][
                1
            ]  # where its node's uploads are, for a process that attaches (never the policy)
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

    def attach(self, ref: JobRef, spec: RunSpec, sink: OutputSink, blobs: BlobStore | None) -> RunHandle | None:
        """The handle of the trial of ``ref``, which adopts its node's uploads from ``blobs`` when ``ref`` names a
        staging prefix of this run's (:func:`~mltrain.compute.node_outputs.staging_of`)."""
        actor, status = self._actor(ref)
        if status is None:
            return None
        cfg = self.conn.config
        direct, refused = staging_of(ref, spec, blobs)
        return WarmHandle(
            spec,
            ref,
            actor,
            sink,
            grace_s=cfg.cancel_grace_s,
            max_output_mb=cfg.max_output_mb,
            direct=direct,
            refused=refused,
        )

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
