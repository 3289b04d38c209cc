"""mltrain's no-code scoring server for scikit-learn models.

Standalone: imports nothing from mltrain outside ``mltrain.serving`` (the deployer copies
``mltrain/__init__.py``, ``mltrain/run_context.py`` and ``mltrain/serving/*.py`` into the model's own
environment). Importing this package is cheap; the server's dependencies load only when it runs.

- ``python -m mltrain.serving CONFIG.json`` runs the server (see :mod:`mltrain.serving.supervisor`).
- :func:`create_app` returns the ASGI app for in-process use.
- :data:`SERVING_REQUIREMENTS` / :func:`requirements_for` list what the model's environment needs.
"""

from __future__ import annotations

from typing import Any

# What the server adds to a model environment (which already has numpy, scikit-learn and joblib).
# Starlette is not needed: the app is raw ASGI. uvicorn[standard] brings uvloop and httptools.
SERVING_REQUIREMENTS: list[str] = ["uvicorn[standard]>=0.30", "orjson>=3.9"]
SKOPS_REQUIREMENT = "skops>=0.10"


def requirements_for(model_format: str) -> list[str]:
    """pip specifiers the server needs for a model in ``model_format`` ("joblib" or "skops")."""
    extra = [SKOPS_REQUIREMENT] if model_format == "skops" else []
    return [*SERVING_REQUIREMENTS, *extra]


def create_app(config: dict[str, Any]) -> Any:
    """The scoring ASGI app for ``config`` (the config file's keys); see :func:`mltrain.serving.app.create_app`."""
    from mltrain.serving.app import create_app as _create_app

    return _create_app(config)


__all__ = ["SERVING_REQUIREMENTS", "SKOPS_REQUIREMENT", "create_app", "requirements_for"]
