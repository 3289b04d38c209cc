"""mltrain: train, register and serve scikit-learn models from Hydra configs.

This module stays standard-library only: a copy of it and of ``run_context`` is put on the
``PYTHONPATH`` of every job, so ``from mltrain import Run`` works in any job environment.
"""

from mltrain.run_context import Run

__version__ = "0.1.0"
__all__ = ["Run", "__version__"]
