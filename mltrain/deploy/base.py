"""The deploy-target plugin point: where and how an endpoint's scoring server runs.

A target is instantiated from ``conf/deploy/*.yaml`` (its constructor arguments are the options) or from
``mltrain endpoints deploy`` options. :mod:`mltrain.deploy.service` does everything that does not
depend on the target (environment, folder, keys, records); a target only starts, probes, stops and
shows the logs of a server:

``start(plan)`` → :class:`Started` once the server process (container) runs; ``ready_file(plan)``
is where the server announces its port; ``probe(record)`` says whether it still runs; ``stop(record)``
stops it and frees its port; ``logs(record, follow)`` prints its output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import ConfigError
from mltrain.workspace.names import check_name

if TYPE_CHECKING:
    from mltrain.environments.base import Materialised

CONFIG_FILE = "config.json"
KEYS_FILE = "keys.json"
READY_FILE = "ready.json"
LOG_FILE = "server.log"
LABEL_WORKSPACE = "mltrain.workspace"  # plan label: the workspace folder the endpoint belongs to


def check_endpoint_name(name: str) -> str:
    """``name`` if it is a valid endpoint name (:mod:`mltrain.workspace.names`), else ConfigError."""
    return check_name(name, "endpoint", ConfigError)


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
    """Options shared by every target; subclasses add their own (each option is a constructor argument)."""

    kind: str = ""

    def __init__(
        self,
        name: str | None = None,
        cpu: float | None = None,
        memory_gb: float | None = None,
        auth: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_mb: float = 1.0,
        trusted_types: list[str] | None = None,
        ready_timeout_s: float = 300.0,
    ) -> None:
        for option, value in (("cpu", cpu), ("memory_gb", memory_gb), ("max_body_mb", max_body_mb)):
            if value is not None and (isinstance(value, bool) or not float(value) > 0):
                raise ConfigError(
                    f"deploy.{option}={value!r} must be a positive number", hint="or null for the default"
                )
        if not isinstance(auth, bool):
            raise ConfigError(f"deploy.auth={auth!r} must be true or false")
        if isinstance(port, bool) or not 0 <= int(port) <= 65535:
            raise ConfigError(f"deploy.port={port!r} is not a port", hint="0 picks a free port")
        if not float(ready_timeout_s) > 0:
            raise ConfigError(f"deploy.ready_timeout_s={ready_timeout_s!r} must be positive")
        if trusted_types is not None and (
            not isinstance(trusted_types, (list, tuple)) or not all(isinstance(t, str) for t in trusted_types)
        ):
            raise ConfigError(f"deploy.trusted_types={trusted_types!r} must be a list of type names")
        self.name = check_endpoint_name(str(name)) if name else None
        self.cpu = None if cpu is None else float(cpu)
        self.memory_gb = None if memory_gb is None else float(memory_gb)
        self.auth = auth
        self.host = str(host or "127.0.0.1")
        self.port = int(port)
        self.max_body_mb = float(max_body_mb)
        self.trusted_types = list(trusted_types or [])
        self.ready_timeout_s = float(ready_timeout_s)

    # -- environment ------------------------------------------------------------------------------
    env_build: str = "venv"  # the builder of the serving environment (venv | docker)
    base_url: str | None = None  # docker: the engine
    base_image: str | None = None  # docker: FROM image of the environment

    def check(self) -> None:
        """Raise when the target cannot deploy now (e.g. the engine is unreachable); before anything runs."""

    def options(self) -> dict[str, Any]:
        """The options as recorded with the endpoint."""
        return {
            "name": self.name,
            "cpu": self.cpu,
            "memory_gb": self.memory_gb,
            "auth": self.auth,
            "host": self.host,
            "port": self.port,
            "max_body_mb": self.max_body_mb,
            "trusted_types": self.trusted_types,
            "ready_timeout_s": self.ready_timeout_s,
        }

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
    def probe(self, record: dict[str, Any]) -> tuple[bool | None, str]:
        """Whether the recorded server still runs (None: cannot tell) and a short reason when it does not."""

    @abstractmethod
    def stop(self, record: dict[str, Any]) -> None:
        """Stop the recorded server (gracefully, then by force) so its port is free; no error when gone."""

    @abstractmethod
    def logs(self, record: dict[str, Any], follow: bool) -> None:
        """Print the server's output to stdout; with ``follow``, until it stops or Ctrl-C."""


def target_for_record(record: dict[str, Any]) -> DeployTarget:
    """The target that manages a recorded endpoint (its engine address included)."""
    if record["target"] == "docker":
        from mltrain.deploy.docker import DockerTarget

        return DockerTarget(base_url=record.get("base_url"))
    from mltrain.deploy.local import LocalTarget

    return LocalTarget()
