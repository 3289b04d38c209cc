"""The environment-builder plugin point: a ResolvedEnvironment becomes something a job runs in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

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

    # -- what is built (``mltrain envs``, the dashboard, ``envs prune``) --------------------------------
    builds: bool = True  # False: nothing is built (the environment is the interpreter itself)

    def present(self, env_hash: str, location: str) -> bool | None:
        """Whether the built environment is still there, checked cheaply (None: cannot tell)."""
        return None

    def size(self, env_hash: str, location: str) -> int | None:
        """Its disk use in bytes, measured now (None: unknown)."""
        return None

    def last_used(self, env_hash: str, location: str) -> float | None:
        """When any workspace on this machine last used the built environment (None: unknown)."""
        return None

    def cached(self) -> list[Cached]:
        """What this builder holds on this machine, recorded by a workspace or not (``envs prune``)."""
        return []

    def remove(self, env_hash: str, location: str, older_than: float | None = None) -> bool:
        """Delete the built environment ``env_hash`` at ``location`` (``mltrain envs prune``) unless it is
        being built or (with ``older_than``) was used since then on this machine; False when it was kept
        or there was nothing to delete. Builders that cannot delete raise NotImplementedError."""
        raise NotImplementedError


class Cached(NamedTuple):  # not a frozen dataclass: defined by every run, ~0.5 ms less start-up
    """A built environment a builder holds on this machine."""

    hash: str
    name: str | None
    location: str
    last_used: float


def record_use(ws: Workspace, env: ResolvedEnvironment, built: Materialised, size_bytes: int | None = None) -> None:
    """Record (or refresh ``last_used_at`` of) a built environment in the workspace.

    The record keeps the spec and the lock the environment was built from (``mltrain envs show``).
    """
    ws.environments.record_use(
        built.hash,
        built.record_kind,
        name=env.spec.name,
        version=env.spec.version,
        python=env.spec.python,
        spec=env.spec.as_dict(),
        lock=env.lock,
        spec_hash=env.spec.spec_hash,
        location=built.location,
        size_bytes=size_bytes if size_bytes is not None else built.size_bytes,
    )
