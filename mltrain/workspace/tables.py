"""The workspace schema (SQLAlchemy Core). JSON values are stored as text for portability.

``SCHEMA_VERSION`` is the version these definitions describe; ``migrations.py`` upgrades older
databases to it step by step. The tables of the model registry, the endpoints and the data assets are
defined on first use (``tables.models`` defines them), so a run, which uses none, does not pay for
them at start-up; :func:`define_all` defines every table before the whole schema is created.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 6

metadata = MetaData()

schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("upgraded_at", Float, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("parent_run_id", String(64), ForeignKey("runs.id"), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("config", Text),  # resolved config, JSON
    Column("overrides", Text),  # command-line overrides, JSON list
    Column("script", Text),
    Column("arguments", Text),  # argv after the script, JSON list
    Column("compute", String(128)),
    Column("env_name", String(256)),
    Column("env_hash", String(64)),
    Column("snapshot_id", String(64)),
    Column("source_dir", Text),
    Column("git_commit", String(64)),
    Column("git_dirty", Boolean),
    Column("exit_code", Integer),
    Column("error", Text),
    Column("run_dir", Text),
    Column("driver_host", String(256)),
    Column("driver_pid", Integer),
    Column("driver_start", String(64)),  # process start token, guards against PID reuse
    Column("child_pid", Integer),
    Column("child_start", String(64)),
    Column("heartbeat_at", Float),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    # version 4: the started job's reference (JSON, mltrain.compute.base.JobRef), for cancel and recovery
    Column("job_ref", Text),
    # version 5: what went wrong after the run ended (a failed registration or deployment), JSON list
    Column("problems", Text),
)
Index("ix_runs_experiment", runs.c.experiment_id, runs.c.created_at)
Index("ix_runs_status", runs.c.status)
Index("ix_runs_parent", runs.c.parent_run_id)

run_status = Table(
    "run_status",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("ts", Float, nullable=False),
    Column("detail", Text),
)
Index("ix_run_status_run", run_status.c.run_id)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("kind", String(8), nullable=False),  # scalar | list | row | table
    Column("value", Float),  # numeric scalars
    Column("data", Text),  # JSON for everything else
    Column("step", Integer),
    Column("ts", Float, nullable=False),
)
Index("ix_metrics_run_key", metrics.c.run_id, metrics.c.key)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the manifest blob
    Column("source_dir", Text),
    Column("file_count", Integer, nullable=False),
    Column("total_bytes", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

models: Table  # these three: defined on first use (_registry_tables)
model_files: Table
model_aliases: Table

# -- version 2: environments -------------------------------------------------------------------

env_locks = Table(
    "env_locks",
    metadata,
    Column("spec_hash", String(64), primary_key=True),  # EnvSpec.spec_hash
    Column("python", String(16), nullable=False),
    Column("lock", Text, nullable=False),  # uv pip compile output
    Column("created_at", Float, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("hash", String(64), primary_key=True),  # cache key: python, lock, base image, build env
    Column("builder", String(32), primary_key=True),  # venv | docker | system
    Column("name", String(256), nullable=False),
    Column("version", String(64)),
    Column("python", String(16)),
    Column("spec", Text),  # EnvSpec.as_dict(), JSON
    Column("spec_hash", String(64)),
    Column("location", Text),  # venv folder or image tag
    Column("size_bytes", Integer),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=False),
)
Index("ix_environments_name", environments.c.name)

# -- version 3: endpoints ----------------------------------------------------------------------

endpoints: Table  # defined on first use (_endpoint_tables)

# -- version 6: data assets --------------------------------------------------------------------

data_versions: Table  # these four: defined on first use (_data_tables)
data_files: Table
data_aliases: Table
run_data: Table


# The tables of the stores a plain run does not touch (model registry, endpoints, data assets) are
# defined on first use: a Table costs ~0.1-0.7 ms to define, paid by every run at start-up.


def _registry_tables() -> dict[str, Table]:
    """The model registry's tables (version 1)."""
    models = Table(
        "models",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(256), nullable=False),
        Column("version", Integer, nullable=False),
        Column("path", Text, nullable=False),  # file or folder name of the model
        Column("sha256", String(64), nullable=False),  # of the file, or of the folder's manifest
        Column("format", String(32), nullable=False),  # joblib | skops
        Column("framework", String(64)),
        Column("framework_version", String(64)),
        Column("description", Text),
        Column("cpu", Float),
        Column("memory_gb", Float),
        Column("tags", Text),  # JSON object
        Column("properties", Text),  # JSON object
        Column("run_id", String(64), ForeignKey("runs.id")),
        Column("env_hash", String(64)),
        Column("created_at", Float, nullable=False),
        Column("archived", Boolean, nullable=False, default=False),
        UniqueConstraint("name", "version", name="uq_models_name_version"),
    )

    model_files = Table(
        "model_files",
        metadata,
        Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
        Column("relpath", String(1024), primary_key=True),
        Column("sha256", String(64), nullable=False),
        Column("size", Integer, nullable=False),
    )

    model_aliases = Table(
        "model_aliases",
        metadata,
        Column("name", String(256), primary_key=True),
        Column("alias", String(128), primary_key=True),
        Column("version", Integer, nullable=False),
    )
    return {"models": models, "model_files": model_files, "model_aliases": model_aliases}


def _endpoint_tables() -> dict[str, Table]:
    """The endpoints' table (version 3)."""
    endpoints = Table(
        "endpoints",
        metadata,
        Column("name", String(256), primary_key=True),
        Column("model_name", String(256), nullable=False),
        Column("model_version", Integer, nullable=False),
        Column("target", String(32), nullable=False),  # local | docker
        Column("state", String(16), nullable=False),  # Creating | Running | Failed (as last recorded)
        Column("uri", Text),  # base URL of the server, e.g. http://127.0.0.1:8123
        Column("host", String(256)),
        Column("port", Integer),
        Column("folder", Text),  # <workspace>/endpoints/<name>: config, model, keys, log
        Column("machine", String(256)),  # host name of the machine that started the server
        Column("pid", Integer),  # local: the server's supervisor process (a process group leader)
        Column("pid_start", String(64)),  # its start token, guards against PID reuse
        Column("container_id", String(128)),  # docker: the container
        Column("base_url", Text),  # docker: the engine address
        Column("env_hash", String(64)),  # the serving environment
        Column("env_location", Text),  # its venv folder or image tag
        Column("auth", Boolean, nullable=False, default=True),
        Column("primary_key_sha256", String(64)),  # keys are stored hashed only
        Column("secondary_key_sha256", String(64)),
        Column("keys_updated_at", Float),
        Column("cpu", Float),
        Column("memory_gb", Float),
        Column("workers", Integer),
        Column("options", Text),  # the deploy options, JSON
        Column("error", Text),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
    )
    return {"endpoints": endpoints}


def _data_tables() -> dict[str, Table]:
    """The data assets' tables (version 6)."""
    data_versions = Table(
        "data_versions",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(256), nullable=False),
        Column("version", Integer, nullable=False),
        Column("type", String(16), nullable=False),  # uri_file | uri_folder
        Column("description", Text),
        Column("tags", Text),  # JSON object
        Column("source", Text, nullable=False),  # the local path or URI it was created from
        Column(
            "stored", Boolean, nullable=False
        ),  # true: copied into the datastore (blobs by sha256); false: a reference
        Column("datastore", String(256), nullable=False),  # the datastore's name (conf/datastore/NAME.yaml)
        Column("datastore_kind", String(32), nullable=False),  # workspace | folder | s3 | azure | gcs | https | ...
        Column("datastore_config", Text, nullable=False),  # its options, JSON, never a credential
        Column("digest", String(64), nullable=False),  # sha256 over the sorted manifest
        Column("size", Integer, nullable=False),
        Column("file_count", Integer, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("archived", Boolean, nullable=False, default=False),
        Column("producer_run_id", String(64), ForeignKey("runs.id"), nullable=True),
        UniqueConstraint("name", "version", name="uq_data_versions_name_version"),
    )

    data_files = Table(
        "data_files",
        metadata,
        Column("version_id", Integer, ForeignKey("data_versions.id"), primary_key=True),
        Column("relpath", String(1024), primary_key=True),
        Column("size", Integer, nullable=False),
        Column("sha256", String(64)),  # of the content; null for a reference the store vouches for by checksum
        Column("checksum", String(256)),  # the store's own (etag:...), null where it keeps none
    )

    data_aliases = Table(
        "data_aliases",
        metadata,
        Column("name", String(256), primary_key=True),
        Column("alias", String(128), primary_key=True),
        Column("version", Integer, nullable=False),
    )

    run_data = Table(
        "run_data",
        metadata,
        Column("run_id", String(64), ForeignKey("runs.id"), primary_key=True),
        Column("direction", String(8), primary_key=True),  # input | output
        Column("name", String(256), primary_key=True),  # the job's input or output name
        Column("version_id", Integer, ForeignKey("data_versions.id"), nullable=True),  # null: a plain URI or path
        Column("uri", Text),  # what the job named when it is not a data asset
        Column("digest", String(64)),
        Column("mode", String(16)),  # download | mount | direct
        Column("created_at", Float, nullable=False),
    )
    Index("ix_run_data_version", run_data.c.version_id)
    return {
        "data_versions": data_versions,
        "data_files": data_files,
        "data_aliases": data_aliases,
        "run_data": run_data,
    }


_ON_FIRST_USE: dict[str, Callable[[], dict[str, Table]]] = {
    **dict.fromkeys(("models", "model_files", "model_aliases"), _registry_tables),
    "endpoints": _endpoint_tables,
    **dict.fromkeys(("data_versions", "data_files", "data_aliases", "run_data"), _data_tables),
}
_defining = threading.Lock()


def __getattr__(name: str) -> Table:
    """A table defined on first use (``tables.models``); once defined it is a plain module attribute."""
    define = _ON_FIRST_USE.get(name)
    if define is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _defining:
        if name not in globals():
            globals().update(define())
    table: Table = globals()[name]
    return table


def define_all() -> None:
    """Define every table of the schema in ``metadata`` (before creating the whole schema)."""
    for name in _ON_FIRST_USE:
        __getattr__(name)
