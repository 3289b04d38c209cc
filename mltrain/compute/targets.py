"""Compute targets built from a ``compute`` config node (or a run's recorded config)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

from mltrain.compute.base import ComputeTarget
from mltrain.errors import ConfigError

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
    return _built_in(node) or instantiate_plugin(node, "compute", ComputeTarget)


def _built_in(node: Mapping[str, Any]) -> ComputeTarget | None:
    """A built-in target (a class of mltrain.compute whose options are the fields of its typed
    ``Config``) made from a plain ``node`` as Hydra's instantiate would make it, without importing
    Hydra (0.1 s); None for anything else, or when the options are wrong (instantiate says why)."""
    target = node.get("_target_")
    if not isinstance(node, dict) or not isinstance(target, str) or not target.startswith("mltrain.compute."):
        return None
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
    config = getattr(cls, "Config", None)
    if not (isinstance(cls, type) and issubclass(cls, ComputeTarget) and dataclasses.is_dataclass(config)):
        return None
    if not set(node) <= {f.name for f in dataclasses.fields(config)}:
        return None
    try:
        return cls(**{k: v for k, v in node.items() if k != "_target_"})
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - instantiate_plugin reports it as usual
        return None
