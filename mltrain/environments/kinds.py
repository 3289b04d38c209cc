"""The environment-builder kinds (``environment.build``) and where each builder class lives.

A new kind (e.g. a remote venv) registers itself with ``register_builder``; ``builders.builder_for``
makes builders from this table.
"""

from __future__ import annotations

BUILDERS: dict[str, str] = {
    "system": "mltrain.environments.system:SystemBuilder",
    "venv": "mltrain.environments.venv:VenvBuilder",
    "docker": "mltrain.environments.docker:DockerBuilder",
}


def register_builder(kind: str, path: str) -> None:
    """Make ``kind`` resolve to the builder class at ``path`` (``module:Class``)."""
    BUILDERS[kind] = path


def builder_kinds() -> tuple[str, ...]:
    return tuple(BUILDERS)
