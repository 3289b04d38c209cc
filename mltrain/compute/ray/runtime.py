"""What a run asks of a Ray cluster, whichever executor runs it: its snapshot staged as a folder
(the working_dir), its runtime_env, and its resources."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import ComputeError
from mltrain.remote.inputs import SNAPSHOT_FILE

if TYPE_CHECKING:
    from mltrain.compute.base import RunSpec
    from mltrain.compute.ray.config import ClusterComputeConfig
    from mltrain.environments.base import Materialised
    from mltrain.workspace import Workspace

Fill = Callable[[Path, bool], None]  # fills a staged folder with what else a job carries (True: nodes may fetch)


class Stage:
    """The snapshots of a target's runs, each restored once into a folder of its own (the runs'
    working_dir, shared by a sweep's trials); the local run folder receives only what comes back.

    When the workspace's blobs are on an object store that signs URLs, a job's folder holds instead the
    snapshot's list of files and a signed GET URL per blob (:data:`~mltrain.remote.inputs.SNAPSHOT_FILE`):
    its node fetches the blobs from the store itself, as it fetches inputs. A node that cannot (the store
    out of its reach, a blob that is not what its name says) says so and the job is submitted again with
    the snapshot carried (:meth:`carried`); later runs of the target then carry it at once. The URLs live
    ``url_expires_s``; a list is signed again after half of that, so a later run never gets one about to expire."""

    def __init__(self, url_expires_s: int) -> None:
        self.url_expires_s = url_expires_s
        self._root: Path | None = None
        self._lock = threading.Lock()
        self.reaches_store = True  # False once a node could not fetch a snapshot from the store
        self._runs: dict[str, tuple[Workspace, RunSpec, Fill | None]] = {}  # what :meth:`carried` stages from
        self._light: dict[str, str] = {}  # runs whose nodes fetch the snapshot themselves: their signed list's key

    def path(self, key: str) -> Path:
        from mltrain.workspace.blobs import check_sha256

        check_sha256(key)  # a folder name: never a path
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="mltrain-ray-"))
            return self._root / key

    def upload(self, ws: Workspace, spec: RunSpec, fill: Fill | None = None) -> bool:
        """Stage ``spec``'s snapshot, or its signed list when its nodes may fetch it themselves (and, through
        ``fill``, what else its job carries) once; False when it was staged already."""
        self._runs[spec.run_id] = (ws, spec, fill)
        signed_at = int(time.time() // max(1, self.url_expires_s // 2))  # signed again every half lifetime
        key = hashlib.sha256(f"{stage_key(spec, light=True)}:{signed_at}".encode()).hexdigest()
        if self.reaches_store and self.path(key).is_dir():  # a sweep's next trial
            self._light[spec.run_id] = key
            return False
        listed = signed_snapshot(ws, spec, self.url_expires_s) if self.reaches_store else None
        if listed is None:
            return self._make(stage_key(spec), ws, spec, fill, None)
        self._light[spec.run_id] = key
        return self._make(key, ws, spec, fill, listed)

    def _make(self, key: str, ws: Workspace, spec: RunSpec, fill: Fill | None, listed: dict[str, Any] | None) -> bool:
        stage = self.path(key)
        if stage.is_dir():
            return False
        scratch = stage.with_name(f".{stage.name}-{secrets.token_hex(4)}")
        try:
            if listed is None:
                ws.snapshots.restore(spec.snapshot_id, scratch)
            else:
                (scratch / SNAPSHOT_FILE).parent.mkdir(parents=True)
                (scratch / SNAPSHOT_FILE).write_text(json.dumps(listed))
            if fill is not None:
                fill(scratch, self.reaches_store)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        try:
            scratch.rename(stage)
        except OSError:  # another trial staged it meanwhile
            shutil.rmtree(scratch, ignore_errors=True)
        return True

    def folder(self, spec: RunSpec, light: bool = False) -> Path:
        """The staged working_dir of ``spec``: with ``light``, the signed list when there is one; else the
        snapshot itself, staged now if it was not (:meth:`carried`)."""
        key = self._light.get(spec.run_id) if light else None
        if key is not None:
            return self.path(key)
        staged = self.path(stage_key(spec))
        if not staged.is_dir() and spec.run_id in self._runs:
            ws, spec, fill = self._runs[spec.run_id]
            self._make(stage_key(spec), ws, spec, fill, None)
        return staged

    def light(self, spec: RunSpec) -> bool:
        """Whether the nodes of ``spec`` fetch its snapshot themselves (its job's working_dir is the list)."""
        return spec.run_id in self._light

    def carried(self, spec: RunSpec) -> None:
        """A node could not fetch ``spec``'s snapshot from the store: its next job carries it (staged
        now), and so do later runs'."""
        self.reaches_store = False
        self._light.pop(spec.run_id, None)

    def forget(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
        self._light.pop(run_id, None)

    def close(self) -> None:
        with self._lock:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None


def signed_snapshot(ws: Workspace, spec: RunSpec, expires_s: int) -> dict[str, Any] | None:
    """The files of ``spec``'s snapshot (``[path, sha256, size, mode]``) with a signed GET URL per blob
    (valid ``expires_s``), for a node that fetches them itself; None when the workspace's blob store signs none."""
    from mltrain.workspace.snapshots import restored_mode

    files, hints = [], {}
    for f in ws.snapshots.get(spec.snapshot_id).files:
        if f.sha256 not in hints:
            url = ws.blobs.signed_url(f.sha256, expires_s)
            if url is None:
                return None
            hints[f.sha256] = {"url": url}
        files.append([f.path, f.sha256, f.size, restored_mode(f.mode)])
    return {"files": files, "hints": hints}


def stage_key(spec: RunSpec, light: bool = False) -> str:
    """The staged folder of ``spec``: its snapshot's, or with inputs or outputs, one per snapshot and data
    (``light``: the snapshot's signed list instead of its files)."""
    if not spec.inputs and not spec.outputs and not light:
        return spec.snapshot_id
    data = [spec.snapshot_id, spec.manifests(), [o.name for o in spec.outputs], *(["light"] if light else [])]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def runtime_env(
    cfg: ClusterComputeConfig,
    stage: Stage,
    spec: RunSpec,
    env: Materialised,
    env_vars: dict[str, str],
    light: bool = False,
) -> dict[str, Any]:
    """The runtime_env of a run: the environment's packages, the staged snapshot as working_dir (``light``:
    its signed list when there is one), the in-script API and the node-side package (:mod:`mltrain.remote`:
    the job wrapper, the warm workers) as py_modules, the environment variables (``env_vars`` last)."""
    from mltrain.environments.ray_runtime import packages_field
    from mltrain.environments.shim import REMOTE_FILES, SHIM_FILES, ensure_shim

    staged = stage.folder(spec, light)
    if not staged.is_dir():
        raise ComputeError(f"the snapshot of run {spec.run_id} was not staged", hint="call upload() before start()")
    shim = ensure_shim(SHIM_FILES + REMOTE_FILES)
    extra = dict(cfg.runtime_env)
    merged = {str(k): str(v) for k, v in dict(extra.pop("env_vars", None) or {}).items()}
    merged.update(env.env_vars)
    merged.update(spec.env_vars)
    merged.update(env_vars)
    return {
        **extra,
        "working_dir": str(staged),
        "py_modules": [*list(extra.pop("py_modules", None) or []), str(shim / "mltrain")],
        "env_vars": merged,
        **packages_field(env.location, cfg.installer),
    }


def resources(cfg: ClusterComputeConfig) -> dict[str, Any]:
    """A run's Ray resources, as an actor's options name them (a job's: ``entrypoint_`` + name)."""
    options: dict[str, Any] = {"num_cpus": cfg.num_cpus}
    if cfg.memory_gb:
        options["memory"] = int(cfg.memory_gb * 1024**3)
    if cfg.resources:
        options["resources"] = dict(cfg.resources)
    return options


def resources_text(cfg: ClusterComputeConfig) -> str:
    """A run's resources as the config names them (for messages)."""
    parts = [f"num_cpus={cfg.num_cpus:g}"]
    if cfg.memory_gb:
        parts.append(f"memory_gb={cfg.memory_gb:g}")
    parts += [f"{k}={v:g}" for k, v in cfg.resources.items()]
    return ", ".join(parts)


def per_run(cfg: ClusterComputeConfig) -> dict[str, float]:
    """The Ray resources one run holds while it runs (its entrypoint's)."""
    need = {"CPU": cfg.num_cpus, **cfg.resources}
    if cfg.memory_gb:
        need["memory"] = float(int(cfg.memory_gb * 1024**3))
    return {k: v for k, v in need.items() if v > 0}
