"""Deploy target configs for commands outside the Hydra app (``mltrain endpoints deploy --target NAME``,
the Python API): ``conf/deploy/NAME.yaml`` (a project's own ``conf/`` first) with options set on top."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.bundled import bundled_dir
from mltrain.config.overrides import project_conf_dir
from mltrain.errors import ConfigError

if TYPE_CHECKING:
    from mltrain.deploy.base import DeployTarget


def deploy_node(target: str) -> dict[str, Any]:
    """``conf/deploy/TARGET.yaml`` of the project (./conf or $MLTRAIN_PROJECT_CONF), else mltrain's."""
    from omegaconf import OmegaConf

    project = Path(project_conf_dir()) / "deploy"
    roots = [project, bundled_dir("conf") / "deploy"]
    for root in roots:
        path = root / f"{target}.yaml"
        if path.is_file():
            node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
            assert isinstance(node, dict)
            node.pop("defaults", None)  # the typed schema: its fields are the target's options
            return node
    options = sorted({p.stem for root in roots if root.is_dir() for p in root.glob("*.yaml")})
    raise ConfigError(f"no deploy target {target!r}", hint=f"use one of: {', '.join(options)}")


def deploy_target(target: str, options: dict[str, Any]) -> DeployTarget:
    """The deploy target ``target`` with ``options`` set (None values left as configured); an unknown
    option is a ConfigError naming the target's options."""
    from mltrain.deploy.targets import target_from_config

    node = deploy_node(target)
    node.update({k: v for k, v in options.items() if v is not None})
    return target_from_config(node)
