"""``azureml.core.compute``: a compute target is a config of ``conf/compute`` (``+compute=NAME``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...exceptions import ComputeTargetException
from .._unsupported import unsupported as unsupported_call

LOCAL = "local"


def compute_names() -> list[str]:
    """The options of the ``compute`` config group: mltrain's own and the project's ``conf/compute``."""
    from .._api import mltrain_api

    return list(mltrain_api("compute_targets").config_options("compute"))


class ComputeTarget:
    """A compute config by name: ``ComputeTarget(ws, "docker")`` runs jobs as ``+compute=docker`` does."""

    def __init__(self, workspace: Any = None, name: str = LOCAL, **kwargs: Any) -> None:
        names = compute_names()
        if name not in names:
            raise ComputeTargetException(
                f"ComputeTarget {name!r} not found: compute targets are the configs of conf/compute "
                f"(known: {', '.join(names)})"
            )
        self.workspace = workspace
        self.name = name
        self.type = name

    def overrides(self) -> list[str]:
        """How a run selects this target."""
        return [] if self.name == LOCAL else [f"+compute={self.name}"]

    @staticmethod
    def create(*args: Any, **kwargs: Any) -> Any:
        raise unsupported_call(
            "ComputeTarget.create", "declare the target in conf/compute/NAME.yaml (see `mltrain compute check`)"
        )

    def wait_for_completion(self, show_output: bool = False, **kwargs: Any) -> None:
        """Nothing to wait for: the target is a config."""

    def get_status(self) -> str:
        return "Succeeded"

    def __repr__(self) -> str:
        return f"ComputeTarget(name={self.name!r})"


def target_overrides(target: Any) -> list[str]:
    """The overrides of a ScriptRunConfig's ``compute_target`` (a ComputeTarget, a name or None)."""
    if target is None or target == LOCAL:
        return []
    if isinstance(target, ComputeTarget):
        return target.overrides()
    if isinstance(target, (str, os.PathLike)):
        return ComputeTarget(None, str(Path(target))).overrides()
    raise TypeError(f"compute_target must be a ComputeTarget or its name, got {type(target).__name__}")


class AmlCompute:
    """Azure's managed clusters: declare a compute config instead."""

    @staticmethod
    def provisioning_configuration(*args: Any, **kwargs: Any) -> Any:
        raise unsupported_call(
            "AmlCompute.provisioning_configuration",
            "declare the target in conf/compute/NAME.yaml (ssh hosts, a Ray cluster) and pick it with "
            "ComputeTarget(ws, NAME)",
        )


ComputeInstance = AmlCompute
__all__ = ["AmlCompute", "ComputeInstance", "ComputeTarget", "ComputeTargetException"]
