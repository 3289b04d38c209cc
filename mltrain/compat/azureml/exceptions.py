"""``azureml.exceptions``: the exceptions of mltrain's stand-in that Azure code catches by name."""

from __future__ import annotations


class AzureMLException(Exception):
    """Base of the stand-in's exceptions (as Azure's)."""


class UserErrorException(AzureMLException):
    """A call with bad arguments."""


class ActivityFailedException(AzureMLException):
    """``run.wait_for_completion(raise_on_error=True)`` of a run that failed or was canceled."""


class WebserviceException(AzureMLException):
    """A web service that cannot be deployed, reached or found."""


class ComputeTargetException(AzureMLException):
    """A compute target that is not configured."""
