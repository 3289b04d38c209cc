"""How this process reaches one Ray cluster: one :class:`RayConnection` per target, shared by its two
executors (a Ray job per run, :mod:`~mltrain.compute.ray.jobs`; warm actors,
:mod:`~mltrain.compute.ray.warm`).

It holds the cluster's address, the token that authenticates us (:mod:`~mltrain.compute.ray.auth`),
the job server's URL (asked of the cluster once for GCS and ``ray://`` addresses) and its Job
Submission client, both made when first needed; for ``address: local`` the private cluster this
process started (:mod:`~mltrain.compute.ray.local_cluster`), released by :meth:`RayConnection.close`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from mltrain.compute.ray.auth import Token, check_address_env, find_token, headers, job_client, job_server_url, probe
from mltrain.compute.ray.config import ClusterComputeConfig
from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

    from mltrain.compute.base import JobRef

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
ADDRESS_PREFIX = "MLTRAIN_GCS_ADDRESS="
SUPERVISOR_PREFIX = "_ray_internal_job_actor_"  # Ray's name of a job's supervisor actor, + submission id


def status_of(info: Any) -> str:
    """The status of a Ray job's info (``SUCCEEDED``, ``RUNNING``, ...; "" when there is none)."""
    status = getattr(info, "status", None)
    return str(getattr(status, "value", status) or "")


class RayConnection:
    def __init__(self, config: ClusterComputeConfig) -> None:
        self.config = config
        self._token: Token | None = None
        self._token_read = False
        self._api: str | None = None
        self._client: JobSubmissionClient | None = None
        self._lock = threading.Lock()
        self._local = False  # holds the private cluster of compute.address=local

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
                self._api = job_server_url(self.config.address, self.token, self.config.connect_timeout_s)
            return self._api

    def _start_local(self) -> None:
        """``address: local``: the process's private single-node cluster (started on first use) and its
        token; released by :meth:`close`."""
        from mltrain.compute.ray import local_cluster

        local = local_cluster.acquire(log=lambda line: print(f"[cluster] {line}", flush=True))
        self._local = True
        self._token, self._token_read = Token(local.token, "the private cluster (compute.address=local)"), True
        self._api = local.dashboard_url

    @property
    def client(self) -> JobSubmissionClient:
        api = self.api
        with self._lock:
            if self._client is None:
                probe(api, self.token, self.config.submit_timeout_s)
                self._client = job_client(api, self.token)
            return self._client

    @property
    def connected(self) -> bool:
        """True once the job client was made (a run was submitted, or a job looked up)."""
        return self._client is not None

    def check(self) -> None:
        """Reaches the job server with our token (a clear error when refused), without importing Ray:
        the job client is made when first needed."""
        api = self.api
        check_address_env(api)
        probe(api, self.token, self.config.submit_timeout_s)

    def get(self, path: str) -> Any:
        """The JSON answer of the job server (dashboard) to ``GET path``, sent with our token."""
        import urllib.request

        req = urllib.request.Request(f"{self.api}{path}", headers=headers(self.token))
        with urllib.request.urlopen(req, timeout=self.config.submit_timeout_s) as resp:  # noqa: S310
            return json.loads(resp.read())

    # -- jobs ---------------------------------------------------------------------------------------
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

    def stop_job(self, sid: str) -> bool:
        """Ask Ray to stop ``sid`` (SIGTERM to its processes); False when it was not running."""
        try:
            return bool(self.client.stop_job(sid))
        except Exception:  # noqa: BLE001 - gone already
            return False

    def supervisors_alive(self, sids: list[str]) -> bool:
        """True while Ray still has the supervisor actor of one of the jobs ``sids`` (State API). Its
        job server watches each supervisor until it died: a job deleted before that is recorded again by
        Ray, as FAILED ("Job supervisor actor died")."""
        from urllib.parse import quote

        for sid in sids:
            name = quote(SUPERVISOR_PREFIX + sid)
            try:
                found = self.get(f"/api/v0/actors?filter_keys=name&filter_predicates=%3D&filter_values={name}")
                actors = found["data"]["result"]["result"]
            except (OSError, ValueError, KeyError, TypeError):
                return False  # no State API: nothing to wait for
            if any(a.get("state") != "DEAD" for a in actors):
                return True
        return False

    def attempts(self, job: str) -> list[tuple[str, str]]:
        """``(submission id, status)`` of each attempt of ``job`` (``<job>-N``) the cluster still knows."""
        out = []
        for n in range(1, 1000):
            sid = f"{job}-{n}"
            try:
                info = self.client.get_job_info(sid)
            except Exception:  # noqa: BLE001 - no such job: no later attempt either
                break
            out.append((sid, status_of(info)))
        return out

    # -- another cluster, or one that is gone ---------------------------------------------------------
    def for_ref(self, ref: JobRef) -> RayConnection:
        """This connection, or one to the cluster the job of ``ref`` ran on when that is another."""
        api = ref.get("api")
        if not api or api == self._api or (self._api is None and ref.get("address") == self.config.address):
            return self
        keys = ("token", "token_file", "token_env", "cancel_grace_s", "connect_timeout_s")
        options = {k: getattr(self.config, k) for k in keys}
        return RayConnection(ClusterComputeConfig(address=str(api), **options))

    def local_gone(self, ref: JobRef) -> bool:
        """A job of a private cluster (``address: local``) that is not this process's: it ended with
        the invocation that started that cluster, there is nothing left to attach to or stop."""
        if ref.get("address") != "local":
            return False
        from mltrain.compute.ray import local_cluster

        local = local_cluster.current()
        return local is None or local.dashboard_url != ref.get("api")

    # -- the address a driver connects to -------------------------------------------------------------
    def gcs_address(self) -> str:
        """The cluster's GCS address, which a driver connects to. A dashboard URL's is asked of the
        cluster once (a tiny job prints the address Ray gives its jobs) and kept in mltrain's cache for
        that cluster session."""
        from mltrain.environments.cache import cache_root

        address = self.config.address
        if address.startswith("ray://") or (address != "local" and "://" not in address):
            return str(address)
        api = self.api
        try:
            session = str(self.get("/api/version").get("session_name") or "")
        except (OSError, ValueError) as exc:
            raise ComputeError(f"cannot ask the Ray job server at {api} for its session: {exc}") from None
        cache = cache_root() / "ray" / f"gcs-{hashlib.sha256(api.encode()).hexdigest()[:16]}.json"
        try:
            saved = json.loads(cache.read_text())
            if session and saved.get("session") == session:
                return str(saved["gcs"])
        except (OSError, ValueError, KeyError, AttributeError):
            pass
        found = self._ask_a_job()
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"session": session, "gcs": found}))
        os.replace(tmp, cache)
        return found

    def _ask_a_job(self) -> str:
        client = self.client
        sid = f"mltrain-address-{secrets.token_hex(5)}"
        code = f"import os; print({ADDRESS_PREFIX!r} + os.environ.get('RAY_ADDRESS', ''))"
        self.submit(sid, {"entrypoint": f'python -c "{code}"'})
        try:
            deadline = time.monotonic() + self.config.submit_timeout_s
            while str(getattr(client.get_job_status(sid), "value", "")) not in TERMINAL:
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

    def close(self) -> None:
        """Release the private cluster of ``address: local`` (if this connection started one)."""
        with self._lock:
            local, self._local = self._local, False
            if local:
                self._client = self._api = None
        if local:
            from mltrain.compute.ray import local_cluster

            local_cluster.release()
