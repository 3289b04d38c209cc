"""A registered model version and the ``NAME[:VERSION|@ALIAS]`` references that name one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mltrain.errors import RegistryError

_REF = re.compile(r"^(?P<name>[^:@]+)(?::(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_.-]+))?$")


@dataclass
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    path: str
    sha256: str
    format: str
    framework: str | None = None
    framework_version: str | None = None
    description: str | None = None
    cpu: float | None = None
    memory_gb: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    env_hash: str | None = None
    created_at: float = 0.0
    archived: bool = False
    files: list[dict[str, Any]] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    id: int = 0

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """Split ``NAME[:VERSION|@ALIAS]``."""
    m = _REF.match(ref.strip())
    if not m:
        raise RegistryError(f"{ref!r} is not a model reference", hint="write NAME, NAME:VERSION or NAME@ALIAS")
    version = m.group("version")
    return m.group("name"), int(version) if version else None, m.group("alias")
