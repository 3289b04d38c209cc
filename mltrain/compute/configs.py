"""Typed configs of the built-in compute targets (the ``compute`` config group).

Each dataclass is stored in Hydra's ConfigStore as ``compute/<name>_schema`` and extended by
``conf/compute/<name>.yaml``, so an unknown option or a value of the wrong type fails at
composition, naming the valid keys. The target classes take these fields as keyword options.
"""

from __future__ import annotations

from dataclasses import dataclass

from mltrain.errors import ConfigError


def positive(option: str, value: float | None, unit: str = "") -> float | None:
    """``value`` as a float, refused unless None or > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not float(value) > 0:
        raise ConfigError(f"{option}={value!r} must be a positive number{unit}", hint="or null for no limit")
    return float(value)


@dataclass
class ComputeConfig:
    """Options every compute target has."""

    _target_: str = "mltrain.compute.local.LocalCompute"
    cancel_grace_s: float = 5.0  # seconds between the polite stop signals and SIGKILL on cancel

    def __post_init__(self) -> None:
        if not float(self.cancel_grace_s) >= 0:
            raise ConfigError(f"compute.cancel_grace_s={self.cancel_grace_s!r} must be >= 0")
        self.cancel_grace_s = float(self.cancel_grace_s)


@dataclass
class LocalComputeConfig(ComputeConfig):
    """This machine: the job is a process group of its own."""

    _target_: str = "mltrain.compute.local.LocalCompute"


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


# ConfigStore name (in group ``compute``) → schema; conf/compute/NAME.yaml lists NAME_schema in its defaults
COMPUTE_SCHEMAS: dict[str, type[ComputeConfig]] = {
    "local_schema": LocalComputeConfig,
    "docker_schema": DockerComputeConfig,
}
