"""The named steps of a deploy, in the order :func:`mltrain.deploy.service.deploy` runs them.

``validate`` (nothing recorded yet) → ``prepare_environment`` → ``lay_out_folder`` (model checked
against its sha256, keys) → ``record_creating`` → ``replace_old_server`` → ``start_server`` →
``wait_ready`` → ``record_running`` (or ``record_failed``) → ``summary``. Every step after
``validate`` runs under the endpoint's file lock (:func:`endpoint_lock`); each takes what the earlier
steps made as explicit arguments, so it can be run and tested on its own.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mltrain.deploy.base import KEYS_FILE, LABEL_WORKSPACE, READY_FILE, ServerPlan, Started
from mltrain.deploy.keys import SLOTS, digest, new_key, write_keys_file
from mltrain.deploy.targets import target_for_record
from mltrain.errors import DeployError
from mltrain.remote.procs import hostname
from mltrain.workspace.endpoints import CREATING, FAILED, RUNNING, Endpoint, EndpointStore

if TYPE_CHECKING:
    from mltrain.deploy.base import DeployTarget
    from mltrain.environments.base import LogFn, Materialised
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace
    from mltrain.workspace.models import ModelFile, ModelVersion


def stderr_log(line: str) -> None:
    """The default log of a deploy: ``[mltrain] LINE`` on stderr."""
    print(f"[mltrain] {line}", file=sys.stderr, flush=True)


def endpoints_root(ws: Workspace) -> Path:
    """``<workspace>/endpoints``: one folder per endpoint, and the endpoints' lock files."""
    return ws.root / "endpoints"


@contextmanager
def endpoint_lock(ws: Workspace, name: str) -> Iterator[None]:
    """Serialise the commands that change endpoint ``name`` (deploy, delete, key regeneration)."""
    from mltrain.environments.cache import file_lock

    def waiting() -> None:
        stderr_log(f"waiting for another command that is changing endpoint {name}")

    with file_lock(endpoints_root(ws) / f".{name}.lock", on_wait=waiting):
        yield


def serving_shim() -> Path:
    """A folder with ``mltrain/__init__.py``, ``run_context.py`` and ``serving/*.py``: the server's code."""
    from mltrain.bundled import package_dir
    from mltrain.environments.shim import SHIM_FILES, ensure_shim

    serving = sorted(f"serving/{p.name}" for p in (package_dir() / "serving").glob("*.py"))
    return ensure_shim((*SHIM_FILES, *serving))


def _port_free(host: str, port: int) -> bool:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(info[0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(info[4])
        return True
    except OSError:
        return False


def resources(mv: ModelVersion, target: DeployTarget) -> tuple[float, float | None, int]:
    """(cpu, memory_gb, workers): the target's options, else the model's registration; workers = round(cpu) >= 1."""
    cpu = target.cpu if target.cpu is not None else (mv.cpu or 1.0)
    memory_gb = target.memory_gb if target.memory_gb is not None else mv.memory_gb
    return cpu, memory_gb, max(1, round(cpu))


@dataclass(frozen=True)
class Request:
    """A checked deploy: the endpoint, the model file and the resources (made by :func:`validate`)."""

    name: str
    mv: ModelVersion
    target: DeployTarget
    folder: Path  # <workspace>/endpoints/<name>
    model: ModelFile  # the model's file that holds the estimator
    fmt: str  # its format (joblib, pickle, skops)
    cpu: float
    memory_gb: float | None
    workers: int

    @property
    def model_rel(self) -> str:
        """Where the model file goes, relative to the endpoint folder (one folder per model version)."""
        return f"model/v{self.mv.version}/{PurePosixPath(self.model.relpath).name}"


@dataclass(frozen=True)
class Keys:
    """The endpoint's keys after :func:`lay_out_folder`."""

    digests: dict[str, str | None]  # slot -> sha256 of the key in use (None: no key)
    made: dict[str, str]  # keys made now, in full: shown once, never stored
    updated_at: float | None  # when the keys last changed


@dataclass(frozen=True)
class Server:
    """A started server (not yet known to be ready) and the endpoint's record with it (what ``stop`` takes)."""

    started: Started
    record: Endpoint


def validate(ws: Workspace, mv: ModelVersion, target: DeployTarget) -> Request:
    """Check the endpoint name, the model (not archived, one model file) and the target (reachable);
    nothing is recorded or changed yet."""
    from mltrain.deploy.configs import check_endpoint_name
    from mltrain.registry.loading import model_file

    name = check_endpoint_name(target.name or mv.name)
    if mv.archived:
        raise DeployError(
            f"model {mv.ref} is archived", hint=f"restore it first: mltrain models archive {mv.ref} --restore"
        )
    entry, fmt = model_file(mv)
    cpu, memory_gb, workers = resources(mv, target)
    target.check()
    return Request(name, mv, target, endpoints_root(ws) / name, entry, fmt, cpu, memory_gb, workers)


def prepare_environment(ws: Workspace, req: Request, log: LogFn) -> tuple[ResolvedEnvironment, Materialised]:
    """Lock, build (cached by hash) and record the serving environment of the model for the target."""
    from mltrain.deploy.environment import prepare_serving_environment, serving_spec

    target = req.target
    spec = serving_spec(ws, req.mv, req.fmt, target.env_build, target.base_image)
    return prepare_serving_environment(ws, spec, log, base_url=target.base_url)


def lay_out_folder(ws: Workspace, req: Request, old: Mapping[str, Any] | None) -> Keys:
    """Copy the model file into the endpoint folder (checked against its sha256) and, with auth on,
    write the keys file: the endpoint's keys are kept, a key is made for each empty slot."""
    req.folder.mkdir(parents=True, exist_ok=True)
    ws.blobs.copy_to(req.model.sha256, req.folder / req.model_rel)
    digests: dict[str, str | None] = {slot: (old or {}).get(f"{slot}_key_sha256") for slot in SLOTS}
    made: dict[str, str] = {}
    if req.target.auth:
        for slot in SLOTS:
            if not digests[slot]:
                made[slot] = new_key()
                digests[slot] = digest(made[slot])
        write_keys_file(req.folder / KEYS_FILE, {k: v for k, v in digests.items() if v})
    return Keys(digests, made, time.time() if made else (old or {}).get("keys_updated_at"))


def record_creating(
    store: EndpointStore, req: Request, env: ResolvedEnvironment, built: Materialised, keys: Keys
) -> None:
    """Record the endpoint as Creating with its model, environment, keys (digests) and resources."""
    target = req.target
    store.save(
        req.name,
        model_name=req.mv.name,
        model_version=req.mv.version,
        target=target.kind,
        state=CREATING,
        folder=str(req.folder),
        env_hash=env.hash,
        env_location=built.location,
        auth=target.auth,
        primary_key_sha256=keys.digests["primary"],
        secondary_key_sha256=keys.digests["secondary"],
        keys_updated_at=keys.updated_at,
        cpu=req.cpu,
        memory_gb=req.memory_gb,
        workers=req.workers,
        options=target.options(),
        error=None,
    )


def replace_old_server(req: Request, old: Mapping[str, Any] | None, log: LogFn) -> int | None:
    """Stop the server the endpoint had (through the target that started it); the port to serve on:
    the target's, else the old one when it is on the same host and free (the URI stays), else any."""
    port = req.target.port
    if old is None:
        return port
    log(f"replacing endpoint {req.name} (model {old['model_name']}:{old['model_version']})")
    target_for_record(old).stop(old)
    host = req.target.host
    if not port and old.get("port") and old.get("host") == host and _port_free(host, old["port"]):
        port = int(old["port"])  # keep the endpoint's URI
    return port


def server_plan(ws: Workspace, req: Request, built: Materialised, port: int | None) -> ServerPlan:
    """What the target needs to start the server: folder, server config, environment, resources."""
    target = req.target
    settings = {
        "name": req.name,
        "model_name": req.mv.name,
        "model_version": str(req.mv.version),
        "model_sha256": req.model.sha256,
        "model_format": req.fmt,
        "trusted_types": target.trusted_types,
        "host": target.host,
        "port": port,
        "auth": target.auth,
        "max_body_bytes": max(1, int(target.max_body_mb * (1 << 20))),
    }
    return ServerPlan(
        req.name,
        req.folder,
        settings,
        req.model_rel,
        built,
        req.workers,
        req.cpu,
        req.memory_gb,
        serving_shim(),
        {LABEL_WORKSPACE: str(ws.root)},
    )


def start_server(store: EndpointStore, req: Request, plan: ServerPlan, log: LogFn) -> Server:
    """Start the server through the target (detached) and record where it runs."""
    target = req.target
    log(f"starting endpoint {req.name} ({target.kind}, {req.workers} worker(s), model {req.mv.ref})")
    started = target.start(plan)
    store.update(
        req.name,
        machine=hostname(),
        pid=started.pid,
        pid_start=started.pid_start,
        container_id=started.container_id,
        base_url=started.base_url,
    )
    return Server(started, store.get(req.name))


def wait_ready(req: Request, server: Server) -> dict[str, Any]:
    """Wait until the server answers ``/health/ready``; its ready file ({"pid", "port", "url"}).
    DeployError with the end of its output when it stops first or is not ready in time."""
    from mltrain.deploy.health import wait_until_ready

    target, started = req.target, server.started
    return wait_until_ready(
        req.name,
        req.folder / READY_FILE,
        lambda: target.exited(started),
        lambda: target.output_tail(req.folder, started),
        target.ready_timeout_s,
    )


def record_failed(store: EndpointStore, req: Request, server: Server, exc: BaseException) -> None:
    """Stop a server that did not become ready and record the endpoint as Failed with the first line of why."""
    req.target.stop(server.record)
    store.update(req.name, state=FAILED, error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def record_running(store: EndpointStore, req: Request, ready: dict[str, Any]) -> str:
    """Record the endpoint as Running at its URI (the one the server announced), drop the model files
    of earlier versions from the folder; the URI."""
    uri = str(ready["url"])
    store.update(req.name, state=RUNNING, uri=uri, host=req.target.host, port=int(ready["port"]))
    for stale in (req.folder / "model").glob("v*"):
        if stale.name != f"v{req.mv.version}":
            shutil.rmtree(stale, ignore_errors=True)
    return uri


def summary(
    req: Request, env: ResolvedEnvironment, keys: Keys, old: Endpoint | None, uri: str, duration_s: float
) -> dict[str, Any]:
    """What a deploy shows: name, URIs, model, keys made now, resources, environment, what it replaced."""
    target = req.target
    return {
        "name": req.name,
        "uri": uri,
        "scoring_uri": f"{uri}/score",
        "swagger_uri": f"{uri}/swagger.json",
        "target": target.kind,
        "model": req.mv.ref,
        "state": RUNNING,
        "auth": target.auth,
        "keys": keys.made,
        "workers": req.workers,
        "cpu": req.cpu,
        "memory_gb": req.memory_gb,
        "environment": env.spec.name,
        "env_hash": env.hash,
        "replaced": old.model if old else None,
        "duration_s": round(duration_s, 2),
    }
