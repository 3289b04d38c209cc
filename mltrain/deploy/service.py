"""Deploying a model version to an endpoint, and managing endpoints: status, keys, delete.

``deploy`` is the same for every target and reads as its named steps (:mod:`mltrain.deploy.steps`):
validate → prepare the serving environment (cached) → lay out the endpoint folder (model file
checked against its sha256, keys) → record Creating → replace the old server (a re-deploy keeps the
endpoint's keys and, when free, its port) → start the new one through the target → wait until it
answers ``/health/ready`` → record Running, or stop it and record Failed. Operations on one
endpoint are serialised by a file lock in ``<workspace>/endpoints``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.deploy.base import KEYS_FILE
from mltrain.deploy.keys import SLOTS, digest, new_key, write_keys_file
from mltrain.deploy.steps import (
    endpoint_lock,
    endpoints_root,
    lay_out_folder,
    prepare_environment,
    record_creating,
    record_failed,
    record_running,
    replace_old_server,
    server_plan,
    start_server,
    stderr_log,
    summary,
    validate,
    wait_ready,
)
from mltrain.deploy.targets import target_for_record
from mltrain.errors import DeployError, MltrainError
from mltrain.workspace.endpoints import CREATING, FAILED, RUNNING, UNHEALTHY

if TYPE_CHECKING:
    from mltrain.deploy.base import DeployTarget
    from mltrain.environments.base import LogFn
    from mltrain.workspace import Workspace
    from mltrain.workspace.endpoints import Endpoint
    from mltrain.workspace.models import ModelVersion

UNKNOWN = "Unknown"


def deploy(ws: Workspace, mv: ModelVersion, target: DeployTarget, log: LogFn | None = None) -> dict[str, Any]:
    """Serve ``mv`` at the endpoint ``target.name`` (default: the model's name); return what to show
    (name, uri, keys made now, ...). DeployError with the server's output when it does not come up."""
    log = log or stderr_log
    began = time.monotonic()
    req = validate(ws, mv, target)
    store = ws.endpoints
    with endpoint_lock(ws, req.name):
        old = store.find(req.name)
        env, built = prepare_environment(ws, req, log)
        keys = lay_out_folder(ws, req, old)
        record_creating(store, req, env, built, keys)
        port = replace_old_server(req, old, log)
        server = start_server(store, req, server_plan(ws, req, built, port), log)
        try:
            ready = wait_ready(req, server)
        except BaseException as exc:
            record_failed(store, req, server, exc)
            raise
        uri = record_running(store, req, ready)
    return summary(req, env, keys, old, uri, time.monotonic() - began)


def endpoint_status(ws: Workspace, record: Endpoint, health: bool = True) -> tuple[str, str]:
    """The live state of an endpoint (Creating, Running, Unhealthy, Failed, Unknown) and why, checked
    now: is the process (container) alive, and does it answer ``/health/ready``."""
    from mltrain.deploy.health import is_ready
    from mltrain.environments.cache import try_lock

    state = record.state
    if state == CREATING:
        fd = try_lock(endpoints_root(ws) / f".{record.name}.lock")
        if fd is None:
            return CREATING, "being deployed"
        os.close(fd)
        return FAILED, "the deploy was interrupted; deploy again"
    if state == FAILED:
        return FAILED, record.error or ""
    try:
        alive, why = target_for_record(record).probe(record)
    except MltrainError as exc:
        return UNKNOWN, str(exc).splitlines()[0]
    if alive is None:
        return UNKNOWN, why
    if not alive:
        return FAILED, why
    if health and not is_ready(record.uri):
        return UNHEALTHY, f"the server runs but {record.uri}/health/ready does not answer 200"
    return RUNNING, ""


def delete_endpoint(ws: Workspace, name: str, force: bool = False) -> Endpoint:
    """Stop the endpoint's server, free its port, remove its folder and record; the record it had."""
    store = ws.endpoints
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
        shutil.rmtree(record.folder or endpoints_root(ws) / name, ignore_errors=True)
        store.delete(name)
    return record


def regenerate_key(ws: Workspace, name: str, slot: str) -> str:
    """Replace the ``slot`` key of endpoint ``name`` (the server picks it up without a restart); the new key."""
    if slot not in SLOTS:
        raise DeployError(f"no key slot {slot!r}", hint="regenerate primary or secondary")
    store = ws.endpoints
    with endpoint_lock(ws, name):
        record = store.get(name)
        if not record.auth:
            raise DeployError(
                f"endpoint {name} was deployed without authentication (auth: false): it has no keys in use",
                hint=f"deploy it again with auth on to make keys: mltrain endpoints deploy "
                f"{record.model} --name {name}",
            )
        key = new_key()
        digests = {s: record.key_digest(s) for s in SLOTS}
        digests[slot] = digest(key)
        write_keys_file(Path(str(record.folder)) / KEYS_FILE, {k: v for k, v in digests.items() if v})
        store.update(name, **{f"{slot}_key_sha256": digests[slot]}, keys_updated_at=time.time())
    return key
