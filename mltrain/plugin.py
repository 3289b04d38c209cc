"""Plugins picked by config (compute and deploy targets): a class named by ``_target_`` plus its options.

A built-in target has a typed config dataclass (``Config`` on the class, stored in Hydra's
ConfigStore by :mod:`mltrain.config.schema`), so a wrong option or type is refused at composition
with the valid keys; a user's own class with a plain YAML node is instantiated as Hydra does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, TypeVar

from mltrain.errors import ConfigError

T = TypeVar("T")


def project_importable() -> None:
    """Make the modules of the project folder (the current one) importable, as ``python -m`` does,
    so a ``_target_`` class of the project (``mycompute.MyCompute``) loads in every mltrain command
    (``mltrain runs cancel`` stopping a job through it). Appended when missing: a file of the
    project never hides a module mltrain itself imports."""
    here = os.getcwd()
    if not any(os.path.abspath(p or os.curdir) == here for p in sys.path):
        sys.path.append(here)


def _check_options(node: Mapping[str, Any], group: str, target: str) -> None:
    """Refuse options the target's class does not take (``+compute.KEY=...`` gets past a typed schema,
    and a user's own class has no schema): its explicit constructor parameters, plus the fields of its
    typed ``Config`` when the constructor takes them as ``**options``."""
    import dataclasses
    import inspect

    from hydra.utils import get_class

    try:
        cls = get_class(target)
        params = list(inspect.signature(cls).parameters.values())
    except Exception:  # noqa: BLE001 - instantiate reports a target that cannot be imported
        return
    config = getattr(cls, "Config", None)
    valid = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if any(p.kind == p.VAR_KEYWORD for p in params):
        if not dataclasses.is_dataclass(config):
            return  # takes anything
        valid += [f.name for f in dataclasses.fields(config) if f.name != "_target_"]
    unknown = sorted(k for k in node if k != "_target_" and k not in valid)
    if unknown:
        raise ConfigError(
            f"{group}: {target} has no option {', '.join(map(repr, unknown))}",
            hint=f"valid options: {', '.join(valid) or '(none)'}",
        )


def instantiate_plugin(node: Mapping[str, Any], group: str, base: type[T]) -> T:
    """The ``base`` instance described by ``node`` (plain containers with ``_target_``)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    target = node.get("_target_")
    if not target:
        raise ConfigError(f"{group} has no _target_", hint=f"select one with +{group}=NAME (conf/{group}/NAME.yaml)")
    _check_options(node, group, str(target))
    try:
        obj = instantiate(dict(node), _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(
            f"{group}: cannot create {target}: {cause or exc}",
            hint=f"check the _target_ class and its options in conf/{group}/",
        ) from exc
    if not isinstance(obj, base):
        raise ConfigError(
            f"{group}: {target} is not a {base.__name__}", hint=f"subclass {base.__module__}.{base.__name__}"
        )
    return obj
