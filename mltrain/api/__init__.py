"""mltrain's Python API (``import mltrain``; ``mltrain.submit``, ``mltrain.sweep``, ``mltrain.Workspace``):
start runs and sweeps as the command line does, follow them, read the workspace as records."""

from mltrain.api.records import (
    EndpointRecord,
    EnvironmentRecord,
    MetricPoint,
    ModelRecord,
    Record,
    Records,
    RunRecord,
)
from mltrain.api.run import Run, Sweep
from mltrain.api.submit import config_options, rerun, submit, sweep
from mltrain.api.workspace import Workspace

__all__ = [
    "EndpointRecord",
    "EnvironmentRecord",
    "MetricPoint",
    "ModelRecord",
    "Record",
    "Records",
    "Run",
    "RunRecord",
    "Sweep",
    "Workspace",
    "config_options",
    "rerun",
    "submit",
    "sweep",
]
