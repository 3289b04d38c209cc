"""Registration of a run's model: a file or folder of the run folder becomes a version, with lineage
to the run (its id and environment hash).

The driver registers after a Completed run (``register`` config group, ``run.register_model``);
``mltrain models register NAME --run ID --path outputs/...`` registers from any finished run, from
its folder or, when that is gone, from the files collected into the workspace.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mltrain.errors import RegistryError
from mltrain.workspace.paths import safe_join

if TYPE_CHECKING:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace
    from mltrain.workspace.models import ModelVersion

SKLEARN = "ScikitLearn"
DEFAULT_PATH = "outputs/model.joblib"


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


def holds_sklearn(source: Path) -> bool:
    """Whether ``source`` (a model file, or a folder with exactly one) holds a scikit-learn estimator."""
    from mltrain.registry.formats import MODEL_EXTENSIONS, is_sklearn_estimator

    if source.is_dir():
        models = [p for p in source.rglob("*") if p.suffix.lower() in MODEL_EXTENSIONS and p.is_file()]
        if len(models) != 1:
            return False
        source = models[0]
    return is_sklearn_estimator(source)


def _inside(run_dir: Path, rel: str) -> Path:
    source = (run_dir / rel).resolve()
    if run_dir not in (source, *source.parents):
        raise RegistryError(
            f"model path {rel!r} is outside the run folder", hint="give a path such as outputs/model.joblib"
        )
    return source


@contextmanager
def _source(ws: Workspace, run: dict[str, Any], rel: str) -> Iterator[Path | None]:
    """``rel`` in the run folder, else restored from the run's collected artifacts; None when neither has it."""
    run_dir = Path(run["run_dir"] or ws.run_dir(run["id"])).resolve()
    source = _inside(run_dir, rel)
    if source.exists():
        yield source
        return
    want = PurePosixPath(rel).as_posix().strip("/")
    items = [a for a in ws.runs.artifacts(run["id"]) if a["path"] == want or a["path"].startswith(want + "/")]
    if not items:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="mltrain-register-") as tmp:
        for item in items:
            ws.blobs.copy_to(item["sha256"], safe_join(tmp, item["path"]))
        yield Path(tmp) / want


def register_run_model(
    ws: Workspace,
    run: dict[str, Any],
    request: dict[str, Any],
    env: ResolvedEnvironment | None,
    missing_hint: str | None = None,
) -> ModelVersion:
    """Register ``request`` (name, path inside the run folder, framework, resources, tags, ...);
    ``missing_hint`` is the fix named when the run has no such file."""
    rel = str(request.get("path") or DEFAULT_PATH)
    with _source(ws, run, rel) as source:
        if source is None:
            raise RegistryError(
                f"run {run['id']} has no {rel} to register as {request.get('name')}",
                hint=missing_hint
                or "save the model there in the script, or give the path where it is saved "
                "(register.path, or --path outputs/...)",
            )
        version = sklearn_version(env)
        framework = request.get("framework") or (SKLEARN if version and holds_sklearn(source) else None)
        framework_version = request.get("framework_version") or (version if framework == SKLEARN else None)
        resources = request.get("resources") or {}
        cpu = request.get("cpu")
        memory_gb = request.get("memory_gb")
        from mltrain.registry.store import ModelRegistry

        return ModelRegistry.of(ws).register(
            str(request["name"]),
            source,
            format=request.get("format"),
            framework=framework,
            framework_version=framework_version,
            description=request.get("description"),
            cpu=cpu if cpu is not None else resources.get("cpu"),
            memory_gb=memory_gb if memory_gb is not None else resources.get("memory_gb"),
            tags=request.get("tags") or {},
            properties=request.get("properties") or {},
            run_id=run["id"],
            env_hash=run.get("env_hash"),
        )


def register_from_run_id(ws: Workspace, run_id: str, request: dict[str, Any]) -> ModelVersion:
    """Register a file of the finished run ``run_id`` (an id or a unique prefix) with lineage to it."""
    from mltrain.registry.environment import model_environment
    from mltrain.workspace.runs import ACTIVE

    run = ws.runs.get(run_id)
    if run["status"] in ACTIVE:
        raise RegistryError(
            f"run {run['id']} is {run['status']}: its files are not final yet",
            hint=f"wait for it to finish (mltrain runs logs {run['id']} -f), then register",
        )
    env = model_environment(ws, run.get("env_hash"), run["id"])
    return register_run_model(ws, run, request, env)
