"""The one way to get an environment builder: looked up by ``environment.build`` kind.

Compute targets, deploy targets, ``mltrain envs`` and ``envs prune`` all get their builder here
instead of branching on the kind (the table is in :mod:`mltrain.environments.kinds`). Builder
modules are imported only when their kind is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from mltrain.environments.base import EnvironmentBuilder
from mltrain.environments.kinds import BUILDERS
from mltrain.errors import EnvironmentSpecError


def builder_for(kind: str, **options: Any) -> EnvironmentBuilder:
    """A builder of ``kind`` made with ``options`` (e.g. docker's ``base_url``)."""
    path = BUILDERS.get(kind)
    if path is None:
        raise EnvironmentSpecError(
            f"no environment builder {kind!r}", hint=f"set environment.build to one of: {', '.join(BUILDERS)}"
        )
    module, _, cls = path.partition(":")
    builder = getattr(importlib.import_module(module), cls)(**options)
    assert isinstance(builder, EnvironmentBuilder)
    return builder
