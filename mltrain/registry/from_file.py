"""Registration of a plain file or folder (``mltrain models register NAME --path FILE``).

Nothing is loaded. When the caller names no framework and the file holds a scikit-learn estimator
(the class of its root object, read without loading it), the framework is ScikitLearn at the
scikit-learn version of the interpreter mltrain runs on: the best guess without loading the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import RegistryError
from mltrain.registry.formats import check_model_file, detect_format, is_sklearn_estimator
from mltrain.registry.from_run import SKLEARN

if TYPE_CHECKING:
    from mltrain.workspace import Workspace
    from mltrain.workspace.models import ModelVersion


def current_sklearn_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scikit-learn")
    except PackageNotFoundError:
        return None


def register_file(ws: Workspace, name: str, path: str | Path, **request: Any) -> ModelVersion:
    """Register ``path`` as the next version of ``name``; ``request`` holds the optional fields of
    :meth:`ModelRegistry.register` (format, framework, framework_version, description, cpu, ...).

    The format from the name (or ``format``) and from the content must agree (RegistryError naming both).
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise RegistryError(f"cannot register {name}: {src} does not exist", hint="check --path")
    declared = request.pop("format", None)
    framework = request.pop("framework", None)
    framework_version = request.pop("framework_version", None)
    fmt = declared
    if src.is_file():
        found = check_model_file(src, src.name, declared)
        fmt = found or detect_format(src.name, declared)
        if framework is None and found and is_sklearn_estimator(src, found):
            framework = SKLEARN
            framework_version = framework_version or current_sklearn_version()
    from mltrain.registry.store import ModelRegistry

    return ModelRegistry.of(ws).register(
        name, src, format=fmt, framework=framework, framework_version=framework_version, **request
    )
