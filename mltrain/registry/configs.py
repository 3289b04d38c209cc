"""Typed config of the ``register`` group: what a completed run registers (conf/register/*.yaml).

The node is always there (stored in the ConfigStore with the root schema), so ``register.name=NAME``
and ``register.path=...`` work whether or not the job selects a register config; a run registers a
model when ``register.name`` is set. ``~register`` drops the job's register config (no registration).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mltrain.errors import ConfigError

TURN_OFF = "~register turns the job's registration off"


@dataclass(repr=False, eq=False)
class ResourceConfig:
    cpu: float = 1.0  # cores (serving workers)
    memory_gb: float = 0.5  # memory limit


@dataclass(repr=False, eq=False)
class RegisterConfig:
    name: str | None = None  # model name (each registration adds a version); null: nothing is registered
    path: str = "outputs/model.joblib"  # file or folder inside the run folder
    format: str | None = None  # joblib | skops; default: from the file extension
    framework: str | None = None  # default: ScikitLearn when scikit-learn is in the environment
    framework_version: str | None = None  # default: the environment's scikit-learn version
    description: str | None = None
    resources: ResourceConfig = field(default_factory=ResourceConfig)
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)


def register_request(node: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The registration a run's resolved ``register`` node asks for; None when it names no model.
    A node that sets other keys but no name is refused (they would be ignored)."""
    if node is None:
        return None
    request = dict(node)
    if request.get("name"):
        return request
    untouched = dataclasses.asdict(RegisterConfig())
    changed = sorted(k for k, v in request.items() if k != "name" and v != untouched.get(k))
    if changed:
        raise ConfigError(
            f"register sets {', '.join('register.' + k for k in changed)} but no register.name",
            hint=f"name the model with register.name=NAME; {TURN_OFF}",
        )
    return None
