"""The warm actors of a sweep on a Ray cluster (the driver's side): :class:`WarmPool` starts
``workers`` detached actors (:class:`mltrain.remote.ray_warm.WarmWorker`), each holding the per-run
resources, and hands an idle one to each trial. A run that needs no runtime_env but its snapshot,
the API and variables gets booted actors (:class:`mltrain.remote.ray_boot.BootedWarmWorker`, on Ray's
ordinary workers, which start sooner: the API and snapshot come as archives through the object
store); others get the runtime_env a job of the run gets. The driver calls each actor every few
seconds (``touch``); an actor nobody calls for a while ends by itself. ``close`` kills them.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mltrain.compute.ray.driver import NAMESPACE, connect, disconnect, send, session
from mltrain.compute.ray.runtime import resources_text
from mltrain.errors import ComputeError
from mltrain.remote import ray_boot

if TYPE_CHECKING:
    from mltrain.compute.ray.connection import RayConnection

TOUCH_S = 5.0  # how often the driver tells its actors it lives (an actor left alone ends: ray_warm.EMPTY_S)
START_JOIN_S = 30.0  # longest close() waits for the pool's start-up thread to notice it
PROGRESS_S = 15.0  # while actors start, a line per starting actor this often (what it does, for how long)
DOING = {
    "DEPENDENCIES_UNREADY": "waiting for its arguments",
    "PENDING_CREATION": "waiting for a node with room, or setting up its runtime environment "
    "(installing the environment's packages on the node)",
    "ALIVE": "importing the script's modules",
    "RESTARTING": "restarting",
}


class Slot:
    """One warm actor of a pool (``host``: the node it runs on, once it is ready)."""

    def __init__(self, actor: Any, name: str) -> None:
        self.actor, self.name = actor, name
        self.host = ""
        self.alive = True


class WarmPool:
    """``workers`` warm actors of one environment and snapshot (``key``) on the cluster of ``conn``
    (``grace_s`` between the polite stop signals and SIGKILL). The connection to the cluster is made at
    once in the background, the actors once the first run gives their options (:meth:`provide`)."""

    def __init__(
        self, conn: RayConnection, grace_s: float, key: tuple[str, str], modules: list[str], workers: int
    ) -> None:
        self.key = key
        self.conn, self.grace_s = conn, grace_s
        self.name = f"mltrain-warm-{secrets.token_hex(5)}"
        self.gcs: str | None = None
        self.broken: str | None = None
        self.retiring = False
        self._cond = threading.Condition()
        self._idle: list[Slot] = []
        self._all: list[Slot] = []
        self._pending = max(1, workers)
        self._connected = False
        self._closed = False
        self._options: tuple[dict[str, Any], dict[str, Any] | None] | None = None
        self._provided = threading.Event()
        self._waiting: list[Any] = []  # the actors' ready() calls still unanswered
        self._starter = threading.Thread(
            target=self._start, args=(modules, self._pending), name="mltrain-warm-start", daemon=True
        )
        self._starter.start()

    def provide(self, options: Callable[[], tuple[dict[str, Any], dict[str, Any] | None]]) -> None:
        """The actors' Ray options and what booted actors are given, if they are
        (:meth:`mltrain.compute.ray.warm.WarmWorkers.actor_options`; made by the first run, once its
        snapshot is staged)."""
        if self._provided.is_set():
            return
        with self._cond:
            if self._options is None:
                try:
                    self._options = options()
                except Exception as exc:  # noqa: BLE001 - e.g. the snapshot was not staged: no warm workers
                    self.broken = str(exc)
                    self._options = ({}, None)
                self._provided.set()

    def _start(self, modules: list[str], workers: int) -> None:
        try:
            self.gcs = self.conn.gcs_address()
            connect(self.gcs, self.conn.token, self.conn.config.connect_timeout_s)
            with self._cond:
                closed, self._connected = self._closed, not self._closed
            if closed:  # closed while connecting
                disconnect()
                return
            import ray

            cfg = self.conn.config
            self._provided.wait()
            with self._cond, session():
                if self._closed or self.broken:
                    return
                cls, args, options = self._actor_class(modules)
                for i in range(workers):
                    name = f"{self.name}-{i}"
                    actor = cls.options(
                        name=name,
                        namespace=NAMESPACE,
                        lifetime="detached",
                        max_concurrency=32,
                        max_restarts=0,
                        **options,
                    ).remote(*args)
                    self._all.append(Slot(actor, name))
            threading.Thread(target=self._touch, name="mltrain-warm-touch", daemon=True).start()
            with session():
                waiting = {s.actor.ready.remote(): s for s in self._all}
                self._waiting = list(waiting)
            failure: Exception | None = None
            started = time.monotonic()
            deadline = None if cfg.start_timeout_s is None else started + cfg.start_timeout_s
            report = started + PROGRESS_S
            while waiting:
                if self._closed:
                    return
                if time.monotonic() >= report:
                    report = time.monotonic() + PROGRESS_S
                    self._progress(list(waiting.values()), time.monotonic() - started)
                left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
                with session():
                    done, _ = ray.wait(list(waiting), num_returns=1, timeout=left)
                if not done and (deadline is None or time.monotonic() < deadline):
                    continue  # still starting (looked again each second: a closed pool stops here)
                if not done:  # no room for these: the others serve, these are given up
                    late = list(waiting.values())
                    with self._cond:
                        self._pending -= len(late)
                        self._cond.notify_all()
                    self._kill(late)
                    if not any(s.alive for s in self._all):
                        raise ComputeError(
                            f"no warm worker was ready within compute.start_timeout_s={cfg.start_timeout_s:g} s "
                            f"(resources asked each: {resources_text(cfg)})"
                        )
                    break
                slot = waiting.pop(done[0])
                self._waiting = list(waiting)
                try:
                    with session():
                        info = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - the actor failed to start (runtime_env, resources, ...)
                    failure, info = exc, {}
                slot.host = str(info.get("host") or "")
                with self._cond:
                    self._pending -= 1
                    if info.get("ready"):
                        self._idle.append(slot)
                    else:
                        slot.alive = False
                    self._cond.notify_all()
                if not slot.alive:
                    self._kill([slot])
            if not any(s.alive for s in self._all):
                raise ComputeError(f"no warm worker started: {failure or 'their fork servers did not start'}")
        except Exception as exc:  # noqa: BLE001 - the trials then run as Ray jobs
            with self._cond:
                self.broken = str(exc) or type(exc).__name__
                self._cond.notify_all()
                closed = self._closed
            if not closed:  # (close() kills them itself)
                self._kill_all()

    def _progress(self, slots: list[Slot], elapsed: float) -> None:
        """A line per actor still starting: its node and what it does (Ray's State API), for how long."""
        try:
            nodes = self.conn.get("/api/v0/nodes?limit=10000&detail=false")["data"]["result"]["result"]
            ips = {n.get("node_id"): n.get("node_ip") for n in nodes}
        except (OSError, ValueError, KeyError, TypeError):
            ips = {}
        for slot in slots:
            try:
                query = f"filter_keys=name&filter_predicates=%3D&filter_values={slot.name}"
                found = self.conn.get(f"/api/v0/actors?{query}")["data"]["result"]["result"]
            except (OSError, ValueError, KeyError, TypeError):
                found = []
            state = str(found[-1].get("state") or "") if found else ""
            node = ips.get(found[-1].get("node_id")) if found else None
            where = f" on node {node}" if node else ""
            doing = DOING.get(state, state.lower() or "starting")
            print(f"[cluster] warm worker {slot.name}{where}: {doing} ({elapsed:.0f} s)", flush=True)

    def _actor_class(self, modules: list[str]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        """The actors' class, the arguments each is made with, and their Ray options. Booted actors
        (:mod:`mltrain.remote.ray_boot`, shipped by value) get their archives through the object store."""
        import ray

        from mltrain.remote.ray_warm import WarmWorker

        options, boot = self._options or ({}, None)
        settings = (modules, self.grace_s, self.conn.config.max_output_mb)
        if boot is None:
            return ray.remote(WarmWorker), settings, options
        ray.cloudpickle.register_pickle_by_value(ray_boot)
        archives = (ray.put(boot["api"]), ray.put(boot["snapshot"]))
        return ray.remote(ray_boot.BootedWarmWorker), (*archives, boot["env_vars"], *settings), options

    def _touch(self) -> None:
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._closed, timeout=TOUCH_S):
                    return
                slots = [s for s in self._all if s.alive]
            for slot in slots:
                send(slot.actor.touch)

    def acquire(self) -> Slot | None:
        """An idle warm actor (waits while all are busy or starting), or None when the pool cannot
        serve (it failed to start, or was retired): the trial then runs as a Ray job."""
        limit = self.conn.config.start_timeout_s
        deadline = None if limit is None else time.monotonic() + limit
        with self._cond:
            while True:
                if self.broken or self.retiring or self._closed:
                    return None
                if self._idle:
                    return self._idle.pop(0)
                if not any(s.alive for s in self._all) and self._pending <= 0:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)

    def release(self, slot: Slot) -> None:
        with self._cond:
            if slot.alive and not (self.retiring or self._closed):
                self._idle.append(slot)
                self._cond.notify_all()
                return
        self._kill([slot])

    def lost(self, slot: Slot) -> None:
        slot.alive = False
        with self._cond:
            self._cond.notify_all()

    def retire(self) -> None:
        """Kill the idle actors now and the busy ones as they finish (their resources are needed)."""
        with self._cond:
            self.retiring = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        self._kill(idle)

    def _kill(self, slots: list[Slot]) -> None:
        """Stop the actors' trials and fork servers (their node files go), then kill the actors."""
        import ray

        if not slots:
            return
        for slot in slots:
            slot.alive = False
        try:
            with session():
                asked = []
                for slot in slots:
                    try:
                        asked.append(slot.actor.shutdown.remote())
                    except Exception:  # noqa: BLE001 - gone already
                        pass
                try:
                    ray.wait(asked, num_returns=len(asked), timeout=self.grace_s * 2 + 10)
                except Exception:  # noqa: BLE001
                    pass
                for slot in slots:
                    try:
                        ray.kill(slot.actor, no_restart=True)
                    except Exception:  # noqa: BLE001 - gone already
                        pass
        except ComputeError:  # not connected (any more): a driverless actor ends by itself
            pass

    def _drain_ready(self) -> None:
        """Take the answers of ready() calls of actors killed while starting: an error Ray holds for
        nobody is printed by Ray (with its traceback) when the driver lets it go, after the sweep's summary."""
        import ray

        refs, self._waiting = self._waiting, []
        if not refs:
            return
        try:
            with session():
                done, _ = ray.wait(refs, num_returns=len(refs), timeout=5)
                for ref in done:
                    try:
                        ray.get(ref, timeout=0)
                    except Exception:  # noqa: BLE001 - the actor died starting: expected, and now taken
                        pass
        except ComputeError:  # not connected: nothing of ours is held
            pass

    def _kill_all(self) -> None:
        with self._cond:
            slots, self._idle = list(self._all), []
        self._kill(slots)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            connected, self._connected = self._connected, False
            self._cond.notify_all()
        self._provided.set()
        self._starter.join(START_JOIN_S)  # it touches Ray no more (else it disconnects itself once connected)
        self._kill_all()
        self._drain_ready()
        if connected:
            disconnect()
