"""Registration of a completed run's model: a file or folder of the run folder becomes a version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import RegistryError

if TYPE_CHECKING:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.registry.store import ModelVersion
    from mltrain.workspace import Workspace

SKLEARN = "ScikitLearn"


def sklearn_version(env: ResolvedEnvironment | None) -> str | None:
    """The scikit-learn version of the run's environment (None when it has none)."""
    if env is None:
        return None
    if env.spec.build == "system":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("scikit-learn")
        except PackageNotFoundError:
            return None
    return env.pinned("scikit-learn")


def register_run_model(
    ws: Workspace, run: dict[str, Any], request: dict[str, Any], env: ResolvedEnvironment | None
) -> ModelVersion:
    """Register ``request`` (name, path inside the run folder, framework, resources, tags, ...)."""
    run_dir = Path(run["run_dir"]).resolve()
    rel = str(request.get("path") or "outputs/model.joblib")
    source = (run_dir / rel).resolve()
    if run_dir not in (source, *source.parents):
        raise RegistryError(
            f"model path {rel!r} is outside the run folder", hint="give a path such as outputs/model.joblib"
        )
    if not source.exists():
        raise RegistryError(
            f"run {run['id']} completed but has no {rel} to register as {request.get('name')}",
            hint="save the model there in the script, or set register.path to where it is saved",
        )
    version = sklearn_version(env)
    framework = request.get("framework") or (SKLEARN if version else None)
    framework_version = request.get("framework_version") or (version if framework == SKLEARN else None)
    resources = request.get("resources") or {}
    return ws.models.register(
        str(request["name"]),
        source,
        format=request.get("format"),
        framework=framework,
        framework_version=framework_version,
        description=request.get("description"),
        cpu=request.get("cpu", resources.get("cpu")),
        memory_gb=request.get("memory_gb", resources.get("memory_gb")),
        tags=request.get("tags") or {},
        properties=request.get("properties") or {},
        run_id=run["id"],
        env_hash=run.get("env_hash"),
    )
