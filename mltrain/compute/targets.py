"""Compute targets built from a ``compute`` config node (or a run's recorded config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mltrain.compute.base import ComputeTarget

# ``_target_`` paths of classes that moved, as recorded runs and users' own configs may still name them
MOVED = {"mltrain.compute.cluster.ClusterCompute": "mltrain.compute.ray.ClusterCompute"}


def compute_from_config(node: Mapping[str, Any] | None) -> ComputeTarget:
    """The compute target of a ``compute`` config node (None: local)."""
    if node is None:
        from mltrain.compute.local import LocalCompute

        return LocalCompute()
    from mltrain.plugin import instantiate_plugin

    target = node.get("_target_")
    if isinstance(target, str) and target in MOVED:
        node = {**node, "_target_": MOVED[target]}
    return instantiate_plugin(node, "compute", ComputeTarget)
