"""Typed configs of the built-in deploy targets (the ``deploy`` config group).

Stored in Hydra's ConfigStore as ``deploy/<name>_schema`` and extended by ``conf/deploy/<name>.yaml``;
the target classes take these fields as keyword options (``mltrain endpoints deploy`` builds them
from its command-line options).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mltrain.compute.configs import positive
from mltrain.errors import ConfigError
from mltrain.workspace.names import check_name


def check_endpoint_name(name: str) -> str:
    """``name`` if it is a valid endpoint name (:mod:`mltrain.workspace.names`), else ConfigError."""
    return check_name(name, "endpoint", ConfigError)


@dataclass
class DeployConfig:
    """Options every deploy target has."""

    _target_: str = "mltrain.deploy.local.LocalTarget"
    name: str | None = None  # endpoint name; null: the model's name
    cpu: float | None = None  # cores: server workers (and the container's CPU limit); null: the model's, else 1
    memory_gb: float | None = None  # memory limit in GB; null: the model's, else none
    auth: bool = True  # require a key (Authorization: Bearer KEY)
    host: str = "127.0.0.1"  # address to listen on
    port: int = 0  # 0: a free port (kept when the endpoint is re-deployed)
    max_body_mb: float = 1.0  # larger request bodies are refused with 413
    trusted_types: list[str] = field(default_factory=list)  # skops models: type names to trust
    ready_timeout_s: float = 300.0  # how long deploy waits for /health/ready

    def __post_init__(self) -> None:
        self.cpu = positive("deploy.cpu", self.cpu)
        self.memory_gb = positive("deploy.memory_gb", self.memory_gb)
        self.max_body_mb = positive("deploy.max_body_mb", self.max_body_mb) or 1.0
        if not isinstance(self.auth, bool):
            raise ConfigError(f"deploy.auth={self.auth!r} must be true or false")
        if isinstance(self.port, bool) or not 0 <= int(self.port) <= 65535:
            raise ConfigError(f"deploy.port={self.port!r} is not a port", hint="0 picks a free port")
        self.port = int(self.port)
        if not float(self.ready_timeout_s) > 0:
            raise ConfigError(f"deploy.ready_timeout_s={self.ready_timeout_s!r} must be positive")
        self.ready_timeout_s = float(self.ready_timeout_s)
        if not isinstance(self.trusted_types, (list, tuple)) or not all(isinstance(t, str) for t in self.trusted_types):
            raise ConfigError(f"deploy.trusted_types={self.trusted_types!r} must be a list of type names")
        self.trusted_types = list(self.trusted_types)
        self.name = check_endpoint_name(str(self.name)) if self.name else None
        self.host = str(self.host or "127.0.0.1")


@dataclass
class LocalDeployConfig(DeployConfig):
    """The scoring server as a detached process group on this machine."""

    _target_: str = "mltrain.deploy.local.LocalTarget"


@dataclass
class DockerDeployConfig(DeployConfig):
    """The scoring server in a container of the serving environment's image."""

    _target_: str = "mltrain.deploy.docker.DockerTarget"
    base_url: str | None = None  # engine address; null: DOCKER_HOST or the default socket
    base_image: str | None = None  # FROM image of the serving environment; null: the model environment's
    user: str | None = None  # uid:gid the server runs as; null: the caller's

    def __post_init__(self) -> None:
        super().__post_init__()
        self.base_url = self.base_url or None
        self.base_image = self.base_image or None


DEPLOY_SCHEMAS: dict[str, type[DeployConfig]] = {
    "local_schema": LocalDeployConfig,
    "docker_schema": DockerDeployConfig,
}
