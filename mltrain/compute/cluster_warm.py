"""Warm workers on a Ray cluster (the driver's side): a sweep's trials without a Ray job each.

``ClusterCompute.prewarm`` makes a :class:`WarmPool`: this process connects to the cluster as a Ray
driver (once, token authentication as for the job server) and starts ``workers`` detached actors
(:class:`mltrain.remote.ray_warm.WarmWorker`), each holding the per-run resources. A run that needs
no runtime_env but its snapshot, the API and variables gets booted actors
(:class:`mltrain.remote.ray_boot.BootedWarmWorker`, on Ray's ordinary workers, which start sooner:
the API and snapshot come as archives through the object store); others get the runtime_env a job
of the run gets (the environment's packages, the staged snapshot as working_dir, the in-script
API). Each actor keeps a fork server that imported the script's modules. A trial then
takes an idle actor, which forks it as an isolated process group in a fresh run folder on its node;
a :class:`WarmHandle` follows it (long polls of new stdout, stderr and metrics bytes), cancels it
through the actor, and ``collect`` fetches its outputs archive (checked as a job's is).

A warm trial's reference is ``{"kind": "ray", "address", "api", "gcs", "namespace", "actor", "run",
"pgid"}``: any process reaches the actor by name and asks it about the trial (attach, stop).
``ClusterCompute.close`` kills the actors; an actor nobody calls for a while ends by itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.archive import extract_outputs
from mltrain.compute.base import JobRef, OutputSink, RunHandle, RunSpec
from mltrain.compute.cluster_stream import ArchiveFile, too_large
from mltrain.errors import ComputeError
from mltrain.remote import ray_boot

if TYPE_CHECKING:
    from mltrain.compute.cluster_auth import Token

NAMESPACE = "mltrain"
POLL_S = 1.0  # longest wait of one poll (it answers as soon as there is output or the trial ended)
TOUCH_S = 5.0  # how often the driver tells its actors it lives (an actor left alone ends: ray_warm.EMPTY_S)
CALL_TIMEOUT_S = 120.0
UNAVAILABLE_S = 120.0  # longest an actor may stay unavailable (its node dying, a network blip) before it is lost
ADDRESS_PREFIX = "MLTRAIN_GCS_ADDRESS="

START_JOIN_S = 30.0  # longest close() waits for the pool's start-up thread to notice it
SHUTDOWN_WAIT_S = 30.0  # longest disconnect() waits for Ray calls in flight before ending the connection

_lock = threading.Lock()
_idle = threading.Condition(_lock)
_driver: dict[str, Any] = {"address": None, "users": 0, "ours": False, "busy": 0}


# -- the Ray driver connection of this process -------------------------------------------------------
def connect(address: str, token: Token | None) -> None:
    """This process as a driver of the Ray cluster at ``address`` (GCS ``HOST:PORT`` or ``ray://``);
    one connection per process, shared by its targets (released by :func:`disconnect`)."""
    import ray

    with _lock:
        if _driver["address"] is None:
            if ray.is_initialized():  # the process's own code connected: use that connection, never end it
                _driver.update(address=address, ours=False)
            else:
                if token is not None:
                    _use_token(token)
                for name in ("ray", "ray._private", "ray.runtime_env"):
                    logging.getLogger(name).setLevel(logging.ERROR)
                failed: list[BaseException] = []

                def init() -> None:  # not on the main thread: Ray then leaves mltrain's SIGTERM handler alone
                    try:
                        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.ERROR, log_to_driver=False)
                    except BaseException as exc:  # noqa: BLE001 - ConnectionError, auth errors, ...
                        failed.append(exc)

                thread = threading.Thread(target=init, name="mltrain-ray-connect", daemon=True)
                thread.start()
                thread.join()
                if failed:
                    raise ComputeError(f"cannot connect to the Ray cluster at {address} as a driver: {failed[0]}")
                _driver.update(address=address, ours=True)
        elif _driver["address"] != address:
            raise ComputeError(
                f"this process is a driver of the Ray cluster at {_driver['address']}, not of {address}",
                hint="one process talks to one Ray cluster's warm workers",
            )
        _driver["users"] += 1


def disconnect() -> None:
    """Release a :func:`connect`; the last one ends the connection once no Ray call of ours runs."""
    import ray

    with _lock:
        _driver["users"] = max(0, _driver["users"] - 1)
        if _driver["users"] == 0 and _driver["address"] is not None:
            ours = _driver["ours"]
            _driver.update(address=None, ours=False)  # no new call starts
            if _idle.wait_for(lambda: _driver["busy"] == 0, timeout=SHUTDOWN_WAIT_S) and ours:
                ray.shutdown()  # (a call still running after the wait: left connected, the process ends soon)


@contextmanager
def session() -> Iterator[None]:
    """Around every Ray call of this module: refused with a ComputeError once this process is no
    longer connected, and :func:`disconnect` waits for those running. (A Ray call after the shutdown
    would start a local Ray instance, or end the process.)"""
    with _lock:
        if _driver["address"] is None:
            raise ComputeError("this process is no longer connected to the Ray cluster")
        _driver["busy"] += 1
    try:
        yield
    finally:
        with _lock:
            _driver["busy"] -= 1
            _idle.notify_all()


def _use_token(token: Token) -> None:
    """Ray's driver takes the token from its environment, read once (when ``ray`` was imported, e.g.
    by the job client): set it there and have Ray read it again (as Ray's own test utilities do)."""
    if _env_token() != token.value:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = token.value
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # another Ray: it reads the environment when connecting
        pass


def _env_token() -> str | None:
    if os.environ.get("RAY_AUTH_MODE") != "token":
        return None
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    try:
        return Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    except (KeyError, OSError):
        return None


def call(method: Any, *args: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
    """``method.remote(*args)`` of an actor and its result (``ray.get`` with a timeout), in a :func:`session`."""
    import ray

    with session():
        return ray.get(method.remote(*args), timeout=timeout)


def send(method: Any, *args: Any) -> None:
    """``method.remote(*args)`` without waiting; nothing when the actor or the connection is gone."""
    try:
        with session():
            method.remote(*args)
    except Exception:  # noqa: BLE001 - gone: whoever follows it notices
        pass


def gcs_address(compute: Any) -> str:
    """The cluster's GCS address, which a driver connects to. A dashboard URL's is asked of the
    cluster once (a tiny job prints the address Ray gives its jobs) and kept in mltrain's cache for
    that cluster session."""
    import urllib.request

    from mltrain.compute.cluster_auth import headers
    from mltrain.environments.cache import cache_root

    address = compute.config.address
    if address.startswith("ray://") or (address != "local" and "://" not in address):
        return str(address)
    api = compute.api
    req = urllib.request.Request(f"{api}/api/version", headers=headers(compute.token))
    try:
        with urllib.request.urlopen(req, timeout=compute.config.submit_timeout_s) as resp:  # noqa: S310
            session = str(json.loads(resp.read()).get("session_name") or "")
    except (OSError, ValueError) as exc:
        raise ComputeError(f"cannot ask the Ray job server at {api} for its session: {exc}") from None
    cache = cache_root() / "ray" / f"gcs-{hashlib.sha256(api.encode()).hexdigest()[:16]}.json"
    try:
        saved = json.loads(cache.read_text())
        if session and saved.get("session") == session:
            return str(saved["gcs"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    found = _ask_a_job(compute)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"session": session, "gcs": found}))
    os.replace(tmp, cache)
    return found


def _ask_a_job(compute: Any) -> str:
    client = compute.client
    sid = f"mltrain-address-{secrets.token_hex(5)}"
    code = f"import os; print({ADDRESS_PREFIX!r} + os.environ.get('RAY_ADDRESS', ''))"
    compute.submit(sid, {"entrypoint": f'python -c "{code}"'})
    try:
        deadline = time.monotonic() + compute.config.submit_timeout_s
        while str(getattr(client.get_job_status(sid), "value", "")) not in ("SUCCEEDED", "FAILED", "STOPPED"):
            if time.monotonic() > deadline:
                raise ComputeError(f"the Ray job {sid} asking for the cluster's GCS address did not end in time")
            time.sleep(0.1)
        for line in client.get_job_logs(sid).splitlines():
            if line.startswith(ADDRESS_PREFIX) and line[len(ADDRESS_PREFIX) :].strip():
                return line[len(ADDRESS_PREFIX) :].strip()
        raise ComputeError(f"the Ray job {sid} did not tell the cluster's GCS address")
    finally:
        try:
            client.delete_job(sid)
        except Exception:  # noqa: BLE001 - still ending: Ray keeps its record
            pass


# -- the pool ----------------------------------------------------------------------------------------
class Slot:
    def __init__(self, actor: Any, name: str) -> None:
        self.actor, self.name = actor, name
        self.host = ""
        self.alive = True


class WarmPool:
    """``workers`` warm actors of one environment and snapshot (``key``). The connection to the cluster
    is made at once in the background, the actors once the first run gives their options (:meth:`provide`)."""

    def __init__(self, compute: Any, key: tuple[str, str], modules: list[str], workers: int) -> None:
        self.key = key
        self.compute = compute
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
        self._starter = threading.Thread(
            target=self._start, args=(modules, self._pending), name="mltrain-warm-start", daemon=True
        )
        self._starter.start()

    def provide(self, options: Callable[[], tuple[dict[str, Any], dict[str, Any] | None]]) -> None:
        """The actors' Ray options and what booted actors are given, if they are
        (``ClusterCompute._actor_options``; made by the first run, once its snapshot is staged)."""
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
            self.gcs = gcs_address(self.compute)
            connect(self.gcs, self.compute.token)
            with self._cond:
                closed, self._connected = self._closed, not self._closed
            if closed:  # closed while connecting
                disconnect()
                return
            import ray

            cfg = self.compute.config
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
            failure: Exception | None = None
            deadline = None if cfg.start_timeout_s is None else time.monotonic() + cfg.start_timeout_s
            while waiting:
                if self._closed:
                    return
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
                            f"(resources asked each: {self.compute.resources_text()})"
                        )
                    break
                slot = waiting.pop(done[0])
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

    def _actor_class(self, modules: list[str]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        """The actors' class, the arguments each is made with, and their Ray options. Booted actors
        (:mod:`mltrain.remote.ray_boot`, shipped by value) get their archives through the object store."""
        import ray

        from mltrain.remote.ray_warm import WarmWorker

        options, boot = self._options or ({}, None)
        settings = (modules, self.compute.cancel_grace_s, self.compute.config.max_output_mb)
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
        limit = self.compute.config.start_timeout_s
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
                    ray.wait(asked, num_returns=len(asked), timeout=self.compute.cancel_grace_s * 2 + 10)
                except Exception:  # noqa: BLE001
                    pass
                for slot in slots:
                    try:
                        ray.kill(slot.actor, no_restart=True)
                    except Exception:  # noqa: BLE001 - gone already
                        pass
        except ComputeError:  # not connected (any more): a driverless actor ends by itself
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
        if connected:
            disconnect()


# -- a trial -----------------------------------------------------------------------------------------
class WarmHandle(RunHandle):
    """A trial forked by a warm actor; a thread follows it with long polls. With ``pool`` (the driver
    that started it) the actor is released once the trial ended and its output was read. When the
    actor dies with its node and ``retries`` > 0, ``retry()`` runs the trial again as a Ray job
    (``inner``), which this handle then follows and passes calls to."""

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
    ) -> None:
        super().__init__(spec)
        self.grace_s = grace_s
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
                self.sink.write(
                    f"[mltrain] the warm Ray worker running this run {died} "
                    f"(compute.max_retries={self._retries}): {first}\n".encode(),
                    "stderr",
                )
                code = 1
        if self.pool is not None and self.slot is not None:
            self.pool.release(self.slot)
        return code

    def _follow_retry(self) -> int:
        assert self._retry is not None
        try:
            inner = self._retry()
        except Exception as exc:  # noqa: BLE001 - the job server refused the job: the run fails with why
            self.sink.write(f"[mltrain] the retry of this run as a Ray job failed: {exc}\n".encode(), "stderr")
            return 1
        with self._mlock:
            self.inner = inner
            reason = self.cancel_reason
        if reason is not None:  # canceled while the retry was submitted
            inner.cancel(reason)
        code = inner.wait(None)
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

    def collect(self, max_output_mb: float) -> None:
        """Fetch the trial's outputs archive from its actor into the run folder (checked, then unpacked)."""
        self.wait(60)
        if self.problem and self.outputs is None:
            raise ComputeError(self.problem)
        outputs = self.outputs or {}
        if "too_large" in outputs:
            raise ComputeError(too_large(int(outputs["too_large"]), f"{max_output_mb:g}"))
        if not outputs.get("size"):
            return
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

    def forget(self) -> None:
        """The actor drops the trial's run folder and files."""
        try:
            call(self.actor.forget, self.run, timeout=30)
        except Exception:  # noqa: BLE001 - the actor is gone, and its files with it
            pass


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


def start_trial(
    compute: Any, pool: WarmPool, slot: Slot, spec: RunSpec, sink: OutputSink, retry: Callable[[], RunHandle]
) -> WarmHandle | None:
    """Fork ``spec`` on ``slot``'s actor; None when the actor cannot (it is then dropped). Should the
    actor die with its node, ``retry`` starts the run again (``compute.max_retries``)."""
    env_vars = {
        **spec.env_vars,
        "MLTRAIN_RUN_ID": spec.run_id,
        "MLTRAIN_EXPERIMENT": spec.experiment,
        "PYTHONUNBUFFERED": "1",
    }
    try:
        info = call(slot.actor.start, spec.run_id, spec.experiment, spec.script, spec.arguments, env_vars)
    except Exception as exc:  # noqa: BLE001 - the actor died: the trial runs as a job
        sink.log(f"the warm Ray worker {slot.name} could not start the run ({exc}); it runs as a Ray job")
        pool.lost(slot)
        pool.release(slot)
        return None
    sink.log(f"run forked by warm Ray worker {slot.name} on node {info.get('host') or slot.host or '?'}")
    ref = {
        "kind": "ray",
        "address": compute.config.address,
        "api": compute.api,
        "gcs": pool.gcs,
        "namespace": NAMESPACE,
        "actor": slot.name,
        "run": spec.run_id,
        "pgid": int(info["pid"]),
    }
    return WarmHandle(
        spec, ref, slot.actor, sink, pool, slot, compute.cancel_grace_s, retry, int(compute.config.max_retries)
    )
