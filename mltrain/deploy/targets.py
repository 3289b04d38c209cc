"""Deploy targets built from a ``deploy`` config node or from an endpoint's record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mltrain.deploy.base import DeployTarget
from mltrain.deploy.configs import DEPLOY_SCHEMAS


def target_from_config(node: Mapping[str, Any]) -> DeployTarget:
    """The deploy target of a ``deploy`` config node (a ``_target_`` class and its options)."""
    from mltrain.plugin import instantiate_plugin

    return instantiate_plugin(node, "deploy", DeployTarget)


def target_for_record(record: Mapping[str, Any]) -> DeployTarget:
    """The target that manages a recorded endpoint (its engine address included)."""
    kind = str(record.get("target") or "local")
    schema = DEPLOY_SCHEMAS.get(f"{kind}_schema", DEPLOY_SCHEMAS["local_schema"])
    node: dict[str, Any] = {"_target_": schema._target_}
    if kind == "docker":
        node["base_url"] = record.get("base_url")
    return target_from_config(node)
