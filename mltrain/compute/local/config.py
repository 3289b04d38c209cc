"""The typed config of local compute (``compute/local_schema``, extended by ``conf/compute/local.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

from mltrain.compute.configs import ComputeConfig


@dataclass
class LocalComputeConfig(ComputeConfig):
    """This machine: the job is a process group of its own."""

    _target_: str = "mltrain.compute.local.LocalCompute"
