"""Local compute: the job runs as a process group of its own on this machine, in its run folder
(:mod:`~mltrain.compute.local.target`; its handles in :mod:`~mltrain.compute.local.handles`).

Its reference is ``{"kind": "local", "host", "pgid", "start"}``: the process group and the start
token of its leader, so a later process never mistakes another group that reused the id for it.
"""

from mltrain.compute.local.config import LocalComputeConfig
from mltrain.compute.local.target import LocalCompute

__all__ = ["LocalCompute", "LocalComputeConfig"]
