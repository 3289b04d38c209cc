"""Deploying a model version to an endpoint, and managing endpoints: status, keys, delete.

``deploy`` is the same for every target: build the serving environment (cached), lay out the
endpoint folder (model file checked against its sha256, keys file, server config), stop the server
the endpoint had (re-deploying replaces it and keeps its keys and, when free, its port), start the
new one through the target, wait until it answers ``/health/ready`` and record it. Operations on one
endpoint are serialised by a file lock in ``<workspace>/endpoints``.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mltrain.deploy.base import KEYS_FILE, LABEL_WORKSPACE, READY_FILE, ServerPlan
from mltrain.deploy.configs import check_endpoint_name
from mltrain.deploy.keys import SLOTS, digest, new_key, write_keys_file
from mltrain.deploy.store import CREATING, FAILED, RUNNING, UNHEALTHY, EndpointStore
from mltrain.deploy.targets import target_for_record
from mltrain.errors import DeployError, MltrainError
from mltrain.procs import hostname

if TYPE_CHECKING:
    from mltrain.deploy.base import DeployTarget
    from mltrain.environments.base import LogFn
    from mltrain.registry.version import ModelVersion
    from mltrain.workspace import Workspace

UNKNOWN = "Unknown"


def _stderr(line: str) -> None:
    print(f"[mltrain] {line}", file=sys.stderr, flush=True)


def endpoints_root(ws: Workspace) -> Path:
    return ws.root / "endpoints"


@contextmanager
def endpoint_lock(ws: Workspace, name: str) -> Iterator[None]:
    from mltrain.environments.cache import file_lock

    def waiting() -> None:
        _stderr(f"waiting for another command that is changing endpoint {name}")

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


def deploy(ws: Workspace, mv: ModelVersion, target: DeployTarget, log: LogFn | None = None) -> dict[str, Any]:
    """Serve ``mv`` at the endpoint ``target.name`` (default: the model's name); return what to show
    (name, uri, keys made now, ...). DeployError with the server's output when it does not come up."""
    from mltrain.deploy.environment import prepare_serving_environment, serving_spec
    from mltrain.deploy.health import wait_until_ready
    from mltrain.registry.loading import model_file

    log = log or _stderr
    began = time.monotonic()
    name = check_endpoint_name(target.name or mv.name)
    if mv.archived:
        raise DeployError(
            f"model {mv.ref} is archived", hint=f"restore it first: mltrain models archive {mv.ref} --restore"
        )
    entry, fmt = model_file(mv)
    cpu, memory_gb, workers = resources(mv, target)
    target.check()
    folder = endpoints_root(ws) / name
    store = EndpointStore(ws)
    with endpoint_lock(ws, name):
        old = store.find(name)
        spec = serving_spec(ws, mv, fmt, target.env_build, target.base_image)
        env, built = prepare_serving_environment(ws, spec, log, base_url=target.base_url)
        shim = serving_shim()
        folder.mkdir(parents=True, exist_ok=True)
        model_rel = f"model/v{mv.version}/{PurePosixPath(entry['relpath']).name}"
        ws.blobs.copy_to(entry["sha256"], folder / model_rel)
        digests = {slot: (old or {}).get(f"{slot}_key_sha256") for slot in SLOTS}
        made: dict[str, str] = {}
        if target.auth:
            for slot in SLOTS:
                if not digests[slot]:
                    made[slot] = new_key()
                    digests[slot] = digest(made[slot])
            write_keys_file(folder / KEYS_FILE, {k: v for k, v in digests.items() if v})
        store.save(
            name,
            model_name=mv.name,
            model_version=mv.version,
            target=target.kind,
            state=CREATING,
            folder=str(folder),
            env_hash=env.hash,
            env_location=built.location,
            auth=target.auth,
            primary_key_sha256=digests["primary"],
            secondary_key_sha256=digests["secondary"],
            keys_updated_at=time.time() if made else (old or {}).get("keys_updated_at"),
            cpu=cpu,
            memory_gb=memory_gb,
            workers=workers,
            options=target.options(),
            error=None,
        )
        port = target.port
        if old is not None:
            log(f"replacing endpoint {name} (model {old['model_name']}:{old['model_version']})")
            target_for_record(old).stop(old)
            if not port and old.get("port") and old.get("host") == target.host and _port_free(target.host, old["port"]):
                port = int(old["port"])  # keep the endpoint's URI
        settings = {
            "name": name,
            "model_name": mv.name,
            "model_version": str(mv.version),
            "model_sha256": entry["sha256"],
            "model_format": fmt,
            "trusted_types": target.trusted_types,
            "host": target.host,
            "port": port,
            "auth": target.auth,
            "max_body_bytes": max(1, int(target.max_body_mb * (1 << 20))),
        }
        plan = ServerPlan(
            name, folder, settings, model_rel, built, workers, cpu, memory_gb, shim, {LABEL_WORKSPACE: str(ws.root)}
        )
        log(f"starting endpoint {name} ({target.kind}, {workers} worker(s), model {mv.ref})")
        started = target.start(plan)
        running = {
            "machine": hostname(),
            "name": name,
            "pid": started.pid,
            "pid_start": started.pid_start,
            "container_id": started.container_id,
            "base_url": started.base_url,
            "target": target.kind,
        }
        store.update(name, **{k: v for k, v in running.items() if k not in ("name", "target")})
        try:
            info = wait_until_ready(
                name,
                folder / READY_FILE,
                lambda: target.exited(started),
                lambda: target.output_tail(folder, started),
                target.ready_timeout_s,
            )
        except BaseException as exc:
            target.stop(running)
            store.update(name, state=FAILED, error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise
        uri = str(info["url"])
        store.update(name, state=RUNNING, uri=uri, host=target.host, port=int(info["port"]))
        for stale in (folder / "model").glob("v*"):
            if stale.name != f"v{mv.version}":
                shutil.rmtree(stale, ignore_errors=True)
    return {
        "name": name,
        "uri": uri,
        "scoring_uri": f"{uri}/score",
        "swagger_uri": f"{uri}/swagger.json",
        "target": target.kind,
        "model": mv.ref,
        "state": RUNNING,
        "auth": target.auth,
        "keys": made,
        "workers": workers,
        "cpu": cpu,
        "memory_gb": memory_gb,
        "environment": env.spec.name,
        "env_hash": env.hash,
        "replaced": f"{old['model_name']}:{old['model_version']}" if old else None,
        "duration_s": round(time.monotonic() - began, 2),
    }


def endpoint_status(ws: Workspace, record: dict[str, Any], health: bool = True) -> tuple[str, str]:
    """The live state of an endpoint (Creating, Running, Unhealthy, Failed, Unknown) and why, checked
    now: is the process (container) alive, and does it answer ``/health/ready``."""
    from mltrain.deploy.health import is_ready
    from mltrain.environments.cache import try_lock

    state = record["state"]
    if state == CREATING:
        fd = try_lock(endpoints_root(ws) / f".{record['name']}.lock")
        if fd is None:
            return CREATING, "being deployed"
        os.close(fd)
        return FAILED, "the deploy was interrupted; deploy again"
    if state == FAILED:
        return FAILED, record.get("error") or ""
    try:
        alive, why = target_for_record(record).probe(record)
    except MltrainError as exc:
        return UNKNOWN, str(exc).splitlines()[0]
    if alive is None:
        return UNKNOWN, why
    if not alive:
        return FAILED, why
    if health and not is_ready(record.get("uri")):
        return UNHEALTHY, f"the server runs but {record.get('uri')}/health/ready does not answer 200"
    return RUNNING, ""


def delete_endpoint(ws: Workspace, name: str, force: bool = False) -> dict[str, Any]:
    """Stop the endpoint's server, free its port, remove its folder and record."""
    store = EndpointStore(ws)
    with endpoint_lock(ws, name):
        record = store.get(name)
        try:
            target_for_record(record).stop(record)
        except MltrainError as exc:
            if not force:
                raise DeployError(
                    f"cannot stop the server of endpoint {name}: {str(exc).splitlines()[0]}",
                    hint=f"fix that and retry, or `mltrain endpoints delete {name} --force` to drop it anyway",
                ) from exc
        shutil.rmtree(record["folder"] or endpoints_root(ws) / name, ignore_errors=True)
        store.delete(name)
    return record


def regenerate_key(ws: Workspace, name: str, slot: str) -> str:
    """Replace the ``slot`` key of endpoint ``name`` (the server picks it up without a restart); the new key."""
    if slot not in SLOTS:
        raise DeployError(f"no key slot {slot!r}", hint="regenerate primary or secondary")
    store = EndpointStore(ws)
    with endpoint_lock(ws, name):
        record = store.get(name)
        if not record["auth"]:
            raise DeployError(
                f"endpoint {name} was deployed without authentication (auth: false): it has no keys in use",
                hint=f"deploy it again with auth on to make keys: mltrain endpoints deploy "
                f"{record['model_name']}:{record['model_version']} --name {name}",
            )
        key = new_key()
        digests = {s: record.get(f"{s}_key_sha256") for s in SLOTS}
        digests[slot] = digest(key)
        write_keys_file(Path(record["folder"]) / KEYS_FILE, {k: v for k, v in digests.items() if v})
        store.update(name, **{f"{slot}_key_sha256": digests[slot]}, keys_updated_at=time.time())
    return key
