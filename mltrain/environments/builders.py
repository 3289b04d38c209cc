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


def builder_of_record(kind: str) -> EnvironmentBuilder | None:
    """The builder of a recorded environment's kind, on this machine: None for one recorded as living
    elsewhere (``KIND@WHERE``), for an unknown kind and for a builder that cannot start here."""
    if kind not in BUILDERS:
        return None
    try:
        return builder_for(kind)
    except Exception:  # noqa: BLE001 - a builder that cannot even start answers nothing
        return None
