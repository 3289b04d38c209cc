"""Config schemas, registered in Hydra's ConfigStore so a typo in a key fails before anything runs.

Groups that pick an implementation (``compute``, ``deploy``) are nodes with a ``_target_``; the
built-in ones extend a typed schema (``compute/local_schema``, ``deploy/docker_schema``, ...), so their
options are checked at composition too. A user's own target may be untyped.

Every run defines these classes at start-up (the prefork child imports them before composing), so the
root schema's dataclasses, here and in the modules it takes nodes from, compile no repr or equality
(``repr=False, eq=False``: about 2 ms in all); OmegaConf needs neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from mltrain.registry.configs import RegisterConfig
from mltrain.runs.sweep.settings import SweepConfig


@dataclass(repr=False, eq=False)
class WorkspaceConfig:
    root: str = "${oc.env:MLTRAIN_WORKSPACE,.mltrain}"  # folder of the embedded workspace
    db_url: str | None = "${oc.env:MLTRAIN_DB_URL,null}"  # SQLAlchemy URL; default: SQLite in root
    artifact_root: str | None = "${oc.env:MLTRAIN_ARTIFACT_ROOT,null}"  # default: root/artifacts


@dataclass(repr=False, eq=False)
class SnapshotConfig:
    max_size_mb: float = 300.0  # total size limit of the snapshot of source_dir
    max_files: int = 2000  # file count limit of the snapshot


@dataclass(repr=False, eq=False)
class JobConfig:
    name: str = "default"  # experiment name used when experiment_name is not set
    source_dir: str = "."  # folder snapshotted and used as the script's working directory
    script: str = MISSING  # path of the script inside source_dir
    arguments: Any = None  # {key: value} as --key value (true: --key), or a list passed as is
    bool_style: str = "flag"  # flag: true → --key, false → omitted; value: --key true|false
    args: list[str] = field(default_factory=list)  # passed verbatim after the arguments
    env_vars: dict[str, str] = field(default_factory=dict)  # extra environment of the script
    max_run_duration_s: float | None = None  # cancel the run after this many seconds
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    inputs: dict[str, Any] = field(default_factory=dict)  # NAME: {path, mode, ...} (mltrain.data.configs.InputConfig)
    outputs: dict[str, Any] = field(default_factory=dict)  # NAME: {path: data:NAME} (mltrain.data.configs.OutputConfig)
    azureml_compat: bool = True  # `import azureml.core` works in the job when its environment lacks azureml-core


@dataclass(repr=False, eq=False)
class DockerImageConfig:
    base_image: str | None = None  # FROM image of a docker-built environment
    network: str = "host"  # network used while building


@dataclass(repr=False, eq=False)
class EnvironmentConfig:
    name: str = "system"
    version: str | None = None  # informational: does not change the cache key
    build: str = "system"  # venv | docker | system
    python: str | None = None  # X.Y; null: the version mltrain runs on
    pip: list[str] = field(default_factory=list)  # requirement specifiers
    requirements_file: str | None = None  # a requirements.txt, added to pip
    conda_file: str | None = None  # an Azure-style conda YAML (python, dependencies, pip:)
    env_vars: dict[str, str] = field(default_factory=dict)  # set for the job (and the build)
    docker: DockerImageConfig = field(default_factory=DockerImageConfig)
    rebuild: bool = False  # lock again and rebuild even when cached


@dataclass(repr=False, eq=False)
class MLTrainConfig:
    experiment_name: str = "${job.name}"
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
    job: JobConfig = field(default_factory=JobConfig)
    compute: Any = None  # null: local; else a node with _target_ (conf/compute/*.yaml)
    register: RegisterConfig = field(
        default_factory=RegisterConfig
    )  # registered after a Completed run if it has a name
    deploy: Any = None  # a node with _target_ (conf/deploy/*.yaml)
    sweep: SweepConfig = field(default_factory=SweepConfig)  # used by -m (multirun) only


SCHEMA_NAME = "mltrain_schema"


def register_schemas() -> None:
    """Store the root schema as ``mltrain_schema`` (the first entry of conf/config.yaml's defaults).

    The typed schemas of the compute and deploy targets (``compute/docker_schema``, ...) are made
    only when a config asks for one, by the ``mltrain-schema://`` config source
    (plugins/hydra_plugins/mltrain_searchpath/schema_source.py)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=MLTrainConfig)
