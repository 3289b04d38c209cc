"""mltrain: train, register and serve scikit-learn models from Hydra configs.

This module stays standard-library only: a copy of it and of ``run_context`` is put on the
``PYTHONPATH`` of every job, so ``from mltrain import Run`` works in any job environment. The Python
API (``mltrain.submit``, ``mltrain.sweep``, ``mltrain.rerun``, ``mltrain.Workspace``) is imported from
:mod:`mltrain.api` on first use; a job's copy has none (it needs mltrain installed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrain.run_context import Run

__version__ = "0.1.0"
__all__ = ["Run", "Workspace", "__version__", "rerun", "submit", "sweep"]
API = ("submit", "sweep", "rerun", "Workspace")


def __getattr__(name: str) -> object:
    if name == "Run":  # imported on first use: `python -m mltrain` starts sooner without it
        from mltrain.run_context import Run

        return Run
    if name not in API:
        raise AttributeError(f"module 'mltrain' has no attribute {name!r}")
    try:
        import mltrain.api as api
    except ModuleNotFoundError as exc:
        if exc.name not in ("mltrain.api", "hydra", "omegaconf", "sqlalchemy"):
            raise
        raise ImportError(
            f"mltrain.{name} is mltrain's Python API, which needs mltrain installed (pip install mltrain); "
            "a job's environment has only the in-script API (mltrain.Run)"
        ) from None
    return getattr(api, name)
