"""Datastore configs for commands outside the Hydra app (``mltrain data create --datastore NAME``):
``conf/datastore/NAME.yaml`` (a project's own ``conf/`` first) with ``datastore.KEY=VALUE`` overrides,
checked against the typed schema its defaults list names, as Hydra would compose it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mltrain.bundled import bundled_dir
from mltrain.config.errors import group_options
from mltrain.errors import ConfigError
from mltrain.workspace.datastores import DEFAULT, workspace_node


def _yaml(name: str) -> Path:
    project = Path(os.path.abspath(os.environ.get("MLTRAIN_PROJECT_CONF") or "conf"))
    for root in (project, bundled_dir("conf")):
        if (root / "datastore" / f"{name}.yaml").is_file():
            return root / "datastore" / f"{name}.yaml"
    raise ConfigError(
        f"no datastore {name!r}",
        hint=f"datastores: {', '.join(group_options('datastore'))} (conf/datastore/NAME.yaml; a project's own "
        "conf/ first)",
    )


def datastore_node(name: str | None, overrides: list[str]) -> dict[str, Any] | None:
    """The config node of datastore ``name`` (``conf/datastore/NAME.yaml``, a project's own ``conf/`` first)
    with ``datastore.KEY=VALUE`` overrides, checked against its typed schema; None when none is needed."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from mltrain.workspace.datastores.configs import DATASTORE_SCHEMAS

    bad = [o for o in overrides if not o.lstrip("+").startswith("datastore.") or "=" not in o]
    if bad:
        raise ConfigError(f"{bad[0]!r} is not a datastore option", hint="write datastore.KEY=VALUE")
    if name is None:
        return None
    if name == DEFAULT and not overrides:
        return workspace_node()
    path = _yaml(name)
    schemas: list[Any] = []
    base = OmegaConf.create()
    try:
        node = OmegaConf.load(path)
        schemas = [DATASTORE_SCHEMAS[d] for d in node.pop("defaults", None) or [] if str(d) in DATASTORE_SCHEMAS]
        base = OmegaConf.structured(schemas[0]) if schemas else base
        given = OmegaConf.from_dotlist([o.lstrip("+").removeprefix("datastore.") for o in overrides])
        merged = OmegaConf.merge(base, node, given)
        unset = [key for key in merged if OmegaConf.is_missing(merged, key)]
        if unset:
            raise ConfigError(
                f"datastore {name} needs {', '.join(f'datastore.{k}' for k in unset)}",
                hint=f"give it after the name: --datastore {name} datastore.{unset[0]}=VALUE, or in {path}",
            )
        result = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        valid = ", ".join(k for k in base if k != "_target_") if schemas else None
        raise ConfigError(
            f"datastore {name} ({path}): {str(exc).splitlines()[0]}", hint=valid and f"its options: {valid}"
        ) from None
    assert isinstance(result, dict)
    return result
