"""The typed config of Docker compute (``compute/docker_schema``, extended by ``conf/compute/docker.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

from mltrain.compute.configs import ComputeConfig, positive
from mltrain.errors import ConfigError


@dataclass
class DockerComputeConfig(ComputeConfig):
    """A container on a Docker engine, in an image of the environment."""

    _target_: str = "mltrain.compute.docker.DockerCompute"
    base_url: str | None = None  # engine address; null: DOCKER_HOST or the default socket
    cpus: float | None = None  # CPU limit in cores; null: no limit
    memory_gb: float | None = None  # memory limit in GB (no swap beyond it); null: no limit
    network: str = "host"  # network mode of the container: host or none
    user: str | None = None  # uid:gid the script runs as; null: the caller's
    keep_container: bool = False  # keep the stopped container after the run

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cpus = positive("compute.cpus", self.cpus, " of cores")
        self.memory_gb = positive("compute.memory_gb", self.memory_gb, " of GB")
        self.base_url = self.base_url or None
        if self.network not in ("host", "none"):
            raise ConfigError(f"compute.network={self.network!r} is not supported", hint="use host or none")
