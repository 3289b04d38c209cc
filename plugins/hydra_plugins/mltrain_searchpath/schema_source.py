"""``mltrain-schema://``: the typed schemas of mltrain's compute and deploy targets and datastores, made
only when a config asks for one (``conf/compute/docker.yaml`` lists ``docker_schema`` in its defaults).

Storing every schema in Hydra's ConfigStore up front converts each dataclass at start-up, whether
the run uses it or not; this source converts one when Hydra loads it.
"""

from __future__ import annotations

import importlib
from typing import Any

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigResult, ConfigSource

# config group -> "module:ATTRIBUTE", a dict of schema name -> dataclass
GROUPS = {
    "compute": "mltrain.compute.schemas:COMPUTE_SCHEMAS",
    "deploy": "mltrain.deploy.configs:DEPLOY_SCHEMAS",
    "datastore": "mltrain.workspace.datastores.configs:DATASTORE_SCHEMAS",
}


def _schemas(group: str) -> dict[str, Any]:
    module, _, attr = GROUPS[group].partition(":")
    schemas: dict[str, Any] = getattr(importlib.import_module(module), attr)
    return schemas


def _split(config_path: str) -> tuple[str, str] | None:
    group, _, name = config_path.strip("/").removesuffix(".yaml").rpartition("/")
    return (group, name) if group in GROUPS and name in _schemas(group) else None


class MltrainSchemaSource(ConfigSource):
    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)

    @staticmethod
    def scheme() -> str:
        return "mltrain-schema"

    def load_config(self, config_path: str) -> ConfigResult:
        from omegaconf import OmegaConf

        found = _split(config_path)
        if found is None:
            raise ValueError(f"mltrain has no schema {config_path}")
        group, name = found
        return ConfigResult(
            config=OmegaConf.structured(_schemas(group)[name]),
            path=f"{self.scheme()}://{self.path}",
            provider=self.provider,
            header={"package": None},
        )

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return config_path.strip("/") in GROUPS

    def is_config(self, config_path: str) -> bool:
        return _split(config_path) is not None

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        group = config_path.strip("/")
        if group not in GROUPS or results_filter == ObjectType.GROUP:
            return []
        return sorted(_schemas(group))
