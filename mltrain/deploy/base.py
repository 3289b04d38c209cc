"""The deploy-target plugin point: where and how an endpoint's scoring server runs.

A target is instantiated from ``conf/deploy/*.yaml`` (its constructor arguments are the options) or from
``mltrain endpoints deploy`` options. The steps of a deploy that do not depend on the target
(:mod:`mltrain.deploy.steps`: environment, folder, keys, records) are the same for every target; a
target only starts, watches, probes, stops and shows the logs of a server:

``check()`` before anything is recorded; ``start(plan)`` → :class:`Started` once the server process
(container) runs; while the deploy waits for ``/health/ready``, ``exited(started)`` says whether the
server is gone and ``output_tail`` gives the end of its output for the error; afterwards, from any
process, ``probe(record)`` says whether it still runs, ``stop(record)`` stops it and frees its port,
``logs(record, follow)`` prints its output. ``tests/deploy_conformance.py`` is the suite every target
passes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mltrain.deploy.configs import DeployConfig

if TYPE_CHECKING:
    from mltrain.environments.base import Materialised

CONFIG_FILE = "config.json"
KEYS_FILE = "keys.json"
READY_FILE = "ready.json"
LOG_FILE = "server.log"
LABEL_WORKSPACE = "mltrain.workspace"  # plan label: the workspace folder the endpoint belongs to


@dataclass
class ServerPlan:
    """What a target needs to start one server: the endpoint folder and the server config (paths
    relative to the folder), the serving environment and the resources."""

    name: str
    folder: Path
    settings: dict[str, Any]  # server config keys without the file paths
    model_rel: str  # the model file, relative to ``folder``
    built: Materialised
    workers: int
    cpu: float
    memory_gb: float | None
    shim_dir: Path
    labels: dict[str, str] = field(default_factory=dict)

    def server_config(self, root: str, memory_watchdog: bool) -> dict[str, Any]:
        """The config file's content with the folder at ``root`` (as the server sees it)."""
        cfg = dict(self.settings)
        cfg.update(
            model_path=f"{root}/{self.model_rel}",
            ready_file=f"{root}/{READY_FILE}",
            keys_file=f"{root}/{KEYS_FILE}" if cfg.get("auth") else None,
            workers=self.workers,
            memory_gb=self.memory_gb if memory_watchdog else None,
        )
        return cfg


@dataclass
class Started:
    """A started server (not yet known to be ready)."""

    pid: int | None = None  # local: the supervisor, leader of its own process group
    pid_start: str | None = None
    container_id: str | None = None
    base_url: str | None = None


class DeployTarget(ABC):
    """Where and how an endpoint's server runs; the options are the fields of ``Config``."""

    kind: str = ""
    Config: ClassVar[type[DeployConfig]] = DeployConfig

    def __init__(self, **options: Any) -> None:
        self.config = cfg = self.Config(**options)
        self.name = cfg.name
        self.cpu = cfg.cpu
        self.memory_gb = cfg.memory_gb
        self.auth = cfg.auth
        self.host = cfg.host
        self.port = cfg.port
        self.max_body_mb = cfg.max_body_mb
        self.trusted_types = cfg.trusted_types
        self.ready_timeout_s = cfg.ready_timeout_s

    # -- environment ------------------------------------------------------------------------------
    env_build: str = "venv"  # the builder of the serving environment (venv | docker)
    base_url: str | None = None  # docker: the engine
    base_image: str | None = None  # docker: FROM image of the environment

    def check(self) -> None:
        """Raise when the target cannot deploy now (e.g. the engine is unreachable); before anything runs."""

    def options(self) -> dict[str, Any]:
        """The options as recorded with the endpoint."""
        from dataclasses import asdict

        return {k: v for k, v in asdict(self.config).items() if k != "_target_"}

    # -- the server -------------------------------------------------------------------------------
    @abstractmethod
    def start(self, plan: ServerPlan) -> Started:
        """Write the server config into the folder and start the server (detached: it outlives the caller)."""

    @abstractmethod
    def exited(self, started: Started) -> str | None:
        """Why the server just started is gone (its exit status), or None while it runs."""

    @abstractmethod
    def output_tail(self, folder: Path, started: Started, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's output."""

    @abstractmethod
    def probe(self, record: Mapping[str, Any]) -> tuple[bool | None, str]:
        """Whether the recorded server still runs (None: cannot tell) and a short reason when it does not."""

    @abstractmethod
    def stop(self, record: Mapping[str, Any]) -> None:
        """Stop the recorded server (gracefully, then by force) so its port is free; no error when gone."""

    @abstractmethod
    def logs(self, record: Mapping[str, Any], follow: bool) -> None:
        """Print the server's output to stdout; with ``follow``, until it stops or Ctrl-C."""
