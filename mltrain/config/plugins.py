"""Instantiation of plugin groups (``compute``, ``deploy``) from their ``_target_``, with errors
that name the unknown option and the valid ones."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from mltrain.errors import ConfigError

T = TypeVar("T")


def _target_params(target: str) -> list[str]:
    try:
        from hydra._internal.utils import _locate

        cls = _locate(target)
        return [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    except Exception:  # noqa: BLE001 - only a hint
        return []


def instantiate_plugin(node: Any, group: str, base: type[T]) -> T:
    """Instantiate ``node`` (a config with ``_target_``) and check it is a ``base``."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if isinstance(node, DictConfig):
        container = OmegaConf.to_container(node, resolve=True)
    else:
        container = dict(node)
    assert isinstance(container, dict)
    target = container.get("_target_")
    if not target:
        raise ConfigError(f"{group} has no _target_", hint=f"select one with +{group}=NAME (conf/{group}/NAME.yaml)")
    try:
        obj = instantiate(container, _convert_="all")
    except InstantiationException as exc:
        text = str(exc)
        params = _target_params(str(target))
        if "unexpected keyword argument" in text:
            bad = text.split("unexpected keyword argument", 1)[1].strip(" '\")")
            bad = bad.split("'")[0]
            raise ConfigError(
                f"{group}: unknown option {bad!r} for {target}",
                hint=f"valid options: {', '.join(params) or '(none)'}",
            ) from exc
        if "Error locating target" in text or "Could not locate" in text:
            raise ConfigError(
                f"{group}: cannot import _target_ {target!r}", hint="check the dotted path of the class"
            ) from exc
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"{group}: {target} rejected its options: {cause}", hint=f"valid options: {', '.join(params) or '(none)'}"
        ) from exc
    if not isinstance(obj, base):
        raise ConfigError(f"{group}: {target} is not a {base.__name__}")
    return obj
