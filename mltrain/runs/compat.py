"""What a job gets so that scripts written for other platforms run as-is: the ``azureml`` stand-in
(mltrain/compat/azureml) on its PYTHONPATH when its environment has no real ``azureml-core`` and
``job.azureml_compat`` is on; an MLflow tracking server (mltrain/runs/mlflow_api.py) when its
environment has mlflow."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.bundled import package_dir
from mltrain.environments.variables import read_references

if TYPE_CHECKING:
    from mltrain.compute.base import RunSpec
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.runs.mlflow_api import TrackingServer
    from mltrain.workspace import Workspace

AZUREML_DIR = "compat/azureml"


def azureml_files() -> tuple[str, ...]:
    """The package-relative files of the azureml stand-in (``compat/azureml/...``)."""
    root = package_dir()
    return tuple(
        sorted(
            p.relative_to(root).as_posix() for p in (root / AZUREML_DIR).rglob("*.py") if "__pycache__" not in p.parts
        )
    )


def has_package(env: ResolvedEnvironment, distribution: str, module: str) -> bool:
    """Whether the job's environment provides ``distribution`` (importable as ``module``)."""
    if env.spec.build == "system":
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return False
        stand_in = package_dir() / "compat"  # on sys.path where mltrain is installed: not the real package
        return spec is not None and not Path(spec.origin or "").resolve().is_relative_to(stand_in.resolve())
    return env.pinned(distribution) is not None


def job_shim(job: dict[str, Any], env: ResolvedEnvironment) -> tuple[Path, dict[str, str]]:
    """The shim folder of a job and the environment variables it needs on top of ``job.env_vars``.

    The folder holds mltrain's in-script API, plus the ``azureml`` stand-in when it applies. A
    ``system`` environment already imports mltrain itself, so the stand-in goes on PYTHONPATH alone.
    """
    from mltrain.environments.shim import SHIM_FILES, ensure_shim

    real = has_package(env, "azureml-core", "azureml.core")
    if real or not job.get("azureml_compat", True):
        if env.spec.build == "system" and not real:  # mltrain's interpreter finds the stand-in by itself
            return ensure_shim(), {"PYTHONPATH": _pythonpath(job, env, _azureml_off())}
        return ensure_shim(), {}
    compat = azureml_files()
    extra: dict[str, str] = {}
    if env.spec.build == "system":
        extra["PYTHONPATH"] = _pythonpath(job, env, ensure_shim(compat))
    return ensure_shim((*SHIM_FILES, *compat)), extra


def _pythonpath(job: dict[str, Any], env: ResolvedEnvironment, first: Path) -> str:
    """``first``, then the PYTHONPATH the job would have had."""
    inherited = read_references(job.get("env_vars") or {}, "job.env_vars").get("PYTHONPATH")
    inherited = inherited or env.spec.job_env.get("PYTHONPATH")
    inherited = inherited or os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(p for p in (str(first), inherited) if p)


AZUREML_OFF = (
    "raise ModuleNotFoundError(\"No module named 'azureml' (job.azureml_compat=false turned mltrain's stand-in "
    "off)\", name='azureml')\n"
)


def _azureml_off() -> Path:
    """A folder whose ``azureml`` package is missing, for a job of mltrain's own interpreter (where the
    stand-in is on sys.path) that turned the stand-in off."""
    from mltrain.environments.cache import cache_root

    folder = cache_root() / "shim" / "azureml-off"
    init = folder / "azureml" / "__init__.py"
    if not init.is_file() or init.read_text() != AZUREML_OFF:
        init.parent.mkdir(parents=True, exist_ok=True)
        scratch = init.with_name(f".{os.getpid()}.tmp")
        scratch.write_text(AZUREML_OFF)
        os.replace(scratch, init)
    return folder


def serve_tracking(ws: Workspace, spec: RunSpec, env: ResolvedEnvironment) -> TrackingServer | None:
    """Start the MLflow tracking server of a run whose environment has mlflow and add its variables
    to the job's environment (``spec.env_vars``); None, with nothing imported or started, otherwise."""
    if not (has_package(env, "mlflow", "mlflow") or has_package(env, "mlflow-skinny", "mlflow")):
        return None
    from mltrain.runs.mlflow_api import TrackingServer

    server = TrackingServer(ws, spec.run_id, spec.experiment, spec.run_dir)
    spec.env_vars.update(server.env)
    return server
