"""``azureml.core`` of mltrain's stand-in: inside a job, ``Run``, ``Model`` and ``ResourceConfiguration``
(the in-script API); from a notebook or script where mltrain is installed, the submit side too:
``Workspace``, ``Experiment``, ``Environment``, ``ScriptRunConfig``, ``ComputeTarget``, ``Webservice``.
Importing anything else raises NotSupportedByMltrain naming it."""

from __future__ import annotations

from typing import Any

from ._unsupported import NotSupportedByMltrain, unsupported_import
from .compute import ComputeTarget
from .environment import Environment
from .experiment import Experiment
from .model import Model
from .resource_configuration import ResourceConfiguration
from .run import Run
from .script_run import ScriptRun
from .script_run_config import ScriptRunConfig
from .webservice import Webservice
from .workspace import Workspace

__all__ = [
    "ComputeTarget",
    "Environment",
    "Experiment",
    "Model",
    "NotSupportedByMltrain",
    "ResourceConfiguration",
    "Run",
    "ScriptRun",
    "ScriptRunConfig",
    "Webservice",
    "Workspace",
]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise unsupported_import(f"azureml.core.{name}", "supported here: " + ", ".join(__all__))
