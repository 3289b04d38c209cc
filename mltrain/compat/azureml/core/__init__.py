"""``azureml.core``: ``Run``, ``Model`` and ``ResourceConfiguration`` of mltrain's stand-in;
importing anything else raises NotSupportedByMltrain naming it."""

from __future__ import annotations

from typing import Any

from ._unsupported import NotSupportedByMltrain, unsupported_import
from .model import Model
from .resource_configuration import ResourceConfiguration
from .run import Experiment, Run

__all__ = ["Experiment", "Model", "NotSupportedByMltrain", "ResourceConfiguration", "Run"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise unsupported_import(f"azureml.core.{name}", "supported here: " + ", ".join(__all__))
