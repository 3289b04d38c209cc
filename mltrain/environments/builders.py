"""The one registry of environment builders, looked up by ``environment.build`` kind.

Compute targets, deploy targets, ``mltrain envs`` and ``envs prune`` all get their builder here
instead of branching on the kind; a new kind (e.g. a remote venv) registers itself with
``register_builder``. Builder modules are imported only when their kind is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mltrain.errors import EnvironmentSpecError

if TYPE_CHECKING:
    from mltrain.environments.base import EnvironmentBuilder

_BUILDERS: dict[str, str] = {
    "system": "mltrain.environments.system:SystemBuilder",
    "venv": "mltrain.environments.venv:VenvBuilder",
    "docker": "mltrain.environments.docker:DockerBuilder",
}


def register_builder(kind: str, path: str) -> None:
    """Make ``kind`` resolve to the builder class at ``path`` (``module:Class``)."""
    _BUILDERS[kind] = path


def builder_kinds() -> tuple[str, ...]:
    return tuple(_BUILDERS)


def builder_for(kind: str, **options: Any) -> EnvironmentBuilder:
    """A builder of ``kind`` made with ``options`` (e.g. docker's ``base_url``)."""
    path = _BUILDERS.get(kind)
    if path is None:
        raise EnvironmentSpecError(
            f"no environment builder {kind!r}", hint=f"set environment.build to one of: {', '.join(_BUILDERS)}"
        )
    module, _, cls = path.partition(":")
    builder: EnvironmentBuilder = getattr(importlib.import_module(module), cls)(**options)
    return builder
