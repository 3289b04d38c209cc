"""The environment-builder plugin point: a ResolvedEnvironment becomes something a job runs in."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace

LogFn = Callable[[str], None]


@dataclass(frozen=True)
class Materialised:
    """A built environment: a Python executable (venv, system) or an image tag (docker), and where
    it lives: ``local`` (this machine) or the target that holds it (``docker:ENGINE``, ``ssh:HOST``,
    ...), so an environment elsewhere is never mistaken for a local one."""

    builder: str
    hash: str
    location: str  # venv folder, interpreter path or image tag
    python: str  # the interpreter to run jobs with (inside the image for docker)
    env_vars: dict[str, str] = field(default_factory=dict)
    cached: bool = False  # True when nothing had to be built
    size_bytes: int | None = None  # disk use, when the builder measured it (after a build)
    where: str = "local"

    @property
    def record_kind(self) -> str:
        """The ``builder`` key of its workspace record: the kind, plus ``@WHERE`` when not local."""
        return self.builder if self.where == "local" else f"{self.builder}@{self.where}"


class EnvironmentBuilder(ABC):
    """Builds environments of one kind; ``materialise`` is safe to call from several processes."""

    kind: str = ""

    def check(self, env: ResolvedEnvironment) -> None:
        """Raise EnvironmentSpecError when ``env`` cannot be built or used here (a Python version
        that is not installed, ...). Called before a run is recorded; cheap when ``env`` is built."""

    @abstractmethod
    def materialise(self, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        """Return the built environment for ``env``, building it first on a cache miss.

        Build output goes to ``log`` line by line; a failed build leaves nothing behind and
        raises EnvironmentSpecError with the end of the build log. ``rebuild`` builds again
        unless this process (command) already built it.
        """

    def remove(self, env_hash: str, location: str) -> bool:
        """Delete the built environment ``env_hash`` at ``location`` (``mltrain envs prune``);
        False when there was nothing to delete. Builders that cannot delete raise NotImplementedError."""
        raise NotImplementedError

    def last_used(self, env_hash: str, location: str) -> float | None:
        """When any workspace on this machine last used the built environment (None: unknown)."""
        return None


def record_use(ws: Workspace, env: ResolvedEnvironment, built: Materialised, size_bytes: int | None = None) -> None:
    """Record (or refresh ``last_used_at`` of) a built environment in the workspace.

    The record keeps the spec and the lock the environment was built from (``mltrain envs show``).
    """
    from sqlalchemy.exc import IntegrityError

    size_bytes = size_bytes if size_bytes is not None else built.size_bytes
    try:
        _record(ws, env, built, size_bytes)
    except IntegrityError:  # another process inserted it first (PostgreSQL has no BEGIN IMMEDIATE)
        _record(ws, env, built, size_bytes)


def _record(ws: Workspace, env: ResolvedEnvironment, built: Materialised, size_bytes: int | None) -> None:
    from mltrain.workspace import tables as t
    from mltrain.workspace.db import now, upsert

    ts = now()
    changed: dict[str, object] = {"last_used_at": ts, "location": built.location, "name": env.spec.name}
    if env.spec.version is not None:
        changed["version"] = env.spec.version
    if size_bytes is not None:
        changed["size_bytes"] = size_bytes
    first = {
        "name": env.spec.name,
        "version": env.spec.version,
        "python": env.spec.python,
        "spec": json.dumps({**env.spec.as_dict(), "lock": env.lock}),
        "spec_hash": env.spec.spec_hash,
        "location": built.location,
        "size_bytes": size_bytes,
        "created_at": ts,
        "last_used_at": ts,
    }
    with ws.db.write() as conn:
        upsert(conn, t.environments, {"hash": built.hash, "builder": built.record_kind}, first, changed)
