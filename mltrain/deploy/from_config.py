"""The ``deploy`` config group: ``python -m mltrain +deploy=local`` deploys the model the run registered.

``check_deploy_config`` instantiates the target before the run starts, so an unknown or bad option
fails before anything runs; ``deploy_from_config`` deploys after a Completed run registered a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltrain.workspace import Workspace
    from mltrain.workspace.models import ModelVersion


def check_deploy_config(node: Any) -> None:
    """Raise ConfigError naming the bad option of a ``deploy`` node; nothing is deployed."""
    from mltrain.deploy.targets import target_from_config

    target_from_config(node)


def deploy_from_config(ws: Workspace, node: Any, model_version: ModelVersion) -> dict[str, Any]:
    """Deploy ``model_version`` with the target of ``node``; what the run summary shows (name, uri, keys...)."""
    from mltrain.deploy.service import deploy
    from mltrain.deploy.targets import target_from_config

    return deploy(ws, model_version, target_from_config(node))
