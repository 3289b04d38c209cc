"""What a run asks of a Ray cluster, whichever executor runs it: its snapshot staged as a folder
(the working_dir), its runtime_env, and its resources."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from mltrain.compute.base import RunSpec
    from mltrain.compute.ray.config import ClusterComputeConfig
    from mltrain.environments.base import Materialised
    from mltrain.workspace import Workspace


class Stage:
    """The snapshots of a target's runs, each restored once into a folder of its own (the runs'
    working_dir, shared by a sweep's trials); the local run folder receives only what comes back."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._lock = threading.Lock()

    def path(self, snapshot_id: str) -> Path:
        from mltrain.workspace.blobs import check_sha256

        check_sha256(snapshot_id)  # a folder name: never a path
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="mltrain-ray-"))
            return self._root / snapshot_id

    def upload(self, ws: Workspace, spec: RunSpec, fill: Callable[[Path], None] | None = None) -> bool:
        """Stage ``spec``'s snapshot (and, through ``fill``, what else its job carries) once; False when
        it was staged already."""
        stage = self.path(stage_key(spec))
        if stage.is_dir():
            return False
        scratch = stage.with_name(f".{stage.name}-{secrets.token_hex(4)}")
        try:
            ws.snapshots.restore(spec.snapshot_id, scratch)
            if fill is not None:
                fill(scratch)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        try:
            scratch.rename(stage)
        except OSError:  # another trial staged it meanwhile
            shutil.rmtree(scratch, ignore_errors=True)
        return True

    def close(self) -> None:
        with self._lock:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None


def stage_key(spec: RunSpec) -> str:
    """The staged folder of ``spec``: its snapshot's, or with inputs or outputs, one per snapshot and data."""
    if not spec.inputs and not spec.outputs:
        return spec.snapshot_id
    data = [spec.snapshot_id, spec.manifests(), [o.name for o in spec.outputs]]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def runtime_env(
    cfg: ClusterComputeConfig, stage: Stage, spec: RunSpec, env: Materialised, env_vars: dict[str, str]
) -> dict[str, Any]:
    """The runtime_env of a run: the environment's packages, the staged snapshot as working_dir, the
    in-script API and the node-side package (:mod:`mltrain.remote`: the job wrapper, the warm workers)
    as py_modules, the environment variables (``env_vars`` last)."""
    from mltrain.environments.ray_runtime import packages_field
    from mltrain.environments.shim import REMOTE_FILES, SHIM_FILES, ensure_shim

    staged = stage.path(stage_key(spec))
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
