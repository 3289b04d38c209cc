"""Typed configs of the built-in compute targets (the ``compute`` config group), one per package.

Each dataclass is stored in Hydra's ConfigStore as ``compute/<name>_schema`` (by the
``mltrain-schema://`` source of plugins/hydra_plugins/mltrain_searchpath) and extended by
``conf/compute/<name>.yaml``, so an unknown option or a value of the wrong type fails at
composition, naming the valid keys. The target classes take these fields as keyword options.
"""

from __future__ import annotations

from mltrain.compute.configs import ComputeConfig
from mltrain.compute.docker.config import DockerComputeConfig
from mltrain.compute.local.config import LocalComputeConfig
from mltrain.compute.ray.config import ClusterComputeConfig
from mltrain.compute.ssh.config import SSHComputeConfig

# ConfigStore name (in group ``compute``) → schema; conf/compute/NAME.yaml lists NAME_schema in its defaults
COMPUTE_SCHEMAS: dict[str, type[ComputeConfig]] = {
    "local_schema": LocalComputeConfig,
    "docker_schema": DockerComputeConfig,
    "ssh_schema": SSHComputeConfig,
    "cluster_schema": ClusterComputeConfig,
}
