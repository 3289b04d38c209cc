"""Plugins picked by config (compute and deploy targets, datastores): a class named by ``_target_`` plus
its options.

A built-in target has a typed config dataclass (``Config`` on the class, stored in Hydra's
ConfigStore by :mod:`mltrain.config.schema`), so a wrong option or type is refused at composition
with the valid keys; a user's own class with a plain YAML node is instantiated as Hydra does. A class
of mltrain itself from a plain node is made directly, as instantiate would make it, so the commands
that only open a target or datastore (``runs cancel``, ``data download``) never import Hydra.
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


def _load_class(target: str) -> Any:
    """The object ``target`` (``package.module.Name``) names; ImportError/AttributeError when none."""
    import importlib

    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _option_names(cls: type) -> list[str] | None:
    """The options ``cls`` takes: its explicit constructor parameters, plus the fields of its typed
    ``Config`` when the constructor takes them as ``**options``; None when it takes anything."""
    import dataclasses
    import inspect

    params = list(inspect.signature(cls).parameters.values())
    config = getattr(cls, "Config", None)
    valid = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if any(p.kind == p.VAR_KEYWORD for p in params):
        if not dataclasses.is_dataclass(config):
            return None
        valid += [f.name for f in dataclasses.fields(config) if f.name != "_target_"]
    return valid


def _check_options(node: Mapping[str, Any], group: str, target: str) -> None:
    """Refuse options the target's class does not take (``+compute.KEY=...`` gets past a typed schema,
    and a user's own class has no schema)."""
    try:
        valid = _option_names(_load_class(target))
    except Exception:  # noqa: BLE001 - instantiate reports a target that cannot be imported
        return
    if valid is None:
        return  # takes anything
    unknown = sorted(k for k in node if k != "_target_" and k not in valid)
    if unknown:
        raise ConfigError(
            f"{group}: {target} has no option {', '.join(map(repr, unknown))}",
            hint=f"valid options: {', '.join(valid) or '(none)'}",
        )


def _plain(value: object) -> bool:
    """Whether ``value`` is what Hydra's instantiate would pass on as it is: scalars, and lists and dicts
    of them (no nested ``_target_``, no ``${...}`` interpolation)."""
    if isinstance(value, str):
        return "${" not in value
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, list):
        return all(map(_plain, value))
    if isinstance(value, dict):
        return "_target_" not in value and all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _built_in(node: Mapping[str, Any], group: str, base: type[T]) -> T | None:
    """A class of mltrain itself made from a plain ``node`` as Hydra's instantiate would make it, without
    importing Hydra (0.1-0.2 s of a command's start); None for anything else (instantiate makes it then)."""
    target = node.get("_target_")
    if not (isinstance(node, dict) and isinstance(target, str) and target.startswith("mltrain.")):
        return None
    if any(k.startswith("_") and k != "_target_" for k in node) or not all(map(_plain, node.values())):
        return None
    try:
        cls = _load_class(target)
    except (ImportError, AttributeError):
        return None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return None
    _check_options(node, group, target)
    try:
        return cls(**{k: v for k, v in node.items() if k != "_target_"})
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as instantiate's failures are, never made twice
        raise _cannot_create(group, target, exc) from exc


def _cannot_create(group: str, target: object, cause: object) -> ConfigError:
    return ConfigError(
        f"{group}: cannot create {target}: {cause}", hint=f"check the _target_ class and its options in conf/{group}/"
    )


def instantiate_plugin(node: Mapping[str, Any], group: str, base: type[T]) -> T:
    """The ``base`` instance described by ``node`` (plain containers with ``_target_``)."""
    built = _built_in(node, group, base)
    if built is not None:
        return built
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
        raise _cannot_create(group, target, cause or exc) from exc
    if not isinstance(obj, base):
        raise ConfigError(
            f"{group}: {target} is not a {base.__name__}", hint=f"subclass {base.__module__}.{base.__name__}"
        )
    return obj
