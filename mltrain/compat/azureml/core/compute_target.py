"""``azureml.core.compute_target``: ComputeTargetException."""

from ..exceptions import ComputeTargetException

__all__ = ["ComputeTargetException"]
