"""The workspace: a database (SQLite file by default) and an artifact root (a folder by default).

``Workspace.open()`` resolves the location from its arguments, then ``MLTRAIN_WORKSPACE``,
``MLTRAIN_DB_URL`` and ``MLTRAIN_ARTIFACT_ROOT``, then the ``.mltrain/`` of the current folder or
of its nearest parent that has one (as git finds its repository), else ``./.mltrain``; the schema
is created or upgraded on open. The artifact root is a folder or an object store URI
(``s3://bucket/prefix``, see :mod:`mltrain.workspace.object_blobs`), whose blobs are then read and
written through a cache folder in the workspace root. Opening only opens the store: recovering runs whose driver died is
the caller's explicit step (``mltrain.runs.recovery.recover_orphans``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrain.workspace.blobs import BlobStore
    from mltrain.workspace.data import DataAssetStore
    from mltrain.workspace.db import Database
    from mltrain.workspace.endpoints import EndpointStore
    from mltrain.workspace.environments import EnvironmentStore
    from mltrain.workspace.metrics import MetricStore
    from mltrain.workspace.models import ModelStore
    from mltrain.workspace.runs import RunStore
    from mltrain.workspace.snapshots import SnapshotStore


DEFAULT_ROOT = ".mltrain"
DB_FILE = "mltrain.db"
BLOB_CACHE = "blob-cache"  # in the root: the local copies of an object store's blobs


def find_workspace(start: Path) -> Path | None:
    """The ``.mltrain`` folder (holding a workspace database) of ``start`` or its nearest parent."""
    for folder in (start, *start.parents):
        candidate = folder / DEFAULT_ROOT
        if (candidate / DB_FILE).is_file():
            return candidate
    return None


def is_new(settings: WorkspaceSettings) -> bool:
    """True when nothing of the (embedded, default-layout) workspace exists yet."""
    return not settings.root.exists()


def discard_new(settings: WorkspaceSettings) -> None:
    """Remove a workspace folder made by a command that then created nothing in it (a run refused
    by its checks): only the default layout, database and artifacts inside the folder."""
    art = settings.artifact_folder
    inside = settings.db_url == f"sqlite:///{settings.root / DB_FILE}" and (
        art is None or art.is_relative_to(settings.root)
    )
    if inside and settings.root.name == DEFAULT_ROOT:
        shutil.rmtree(settings.root, ignore_errors=True)


@dataclass(frozen=True)
class WorkspaceSettings:
    root: Path  # local folder: run folders, the default database and artifact root, the blob cache
    db_url: str
    artifact_root: Path | str  # a folder, or an object store URI (a str: s3://bucket/prefix)

    @classmethod
    def resolve(
        cls, root: str | None = None, db_url: str | None = None, artifact_root: str | None = None
    ) -> WorkspaceSettings:
        """The settings from the arguments, else the environment, else the nearest ``.mltrain/``
        (the relative default ``.mltrain`` is searched for in the current folder and its parents)."""
        given = root or os.environ.get("MLTRAIN_WORKSPACE") or DEFAULT_ROOT
        base = (find_workspace(Path.cwd()) if given == DEFAULT_ROOT else None) or Path(given).expanduser().absolute()
        url = db_url or os.environ.get("MLTRAIN_DB_URL") or f"sqlite:///{base / DB_FILE}"
        art = artifact_root or os.environ.get("MLTRAIN_ARTIFACT_ROOT") or str(base / "artifacts")
        if "://" in art and not art.startswith("file://"):
            scheme, rest = art.split("://", 1)
            return cls(base, url, f"{scheme}://{rest.rstrip('/')}")
        return cls(base, url, Path(art.removeprefix("file://")).expanduser().absolute())

    @property
    def artifact_folder(self) -> Path | None:
        """The artifact root when it is a folder (None for an object store)."""
        return self.artifact_root if isinstance(self.artifact_root, Path) else None

    @property
    def local_folders(self) -> tuple[Path, ...]:
        """The workspace's folders on this machine (left out of a snapshot of a folder holding them)."""
        return (self.root,) if self.artifact_folder is None else (self.root, self.artifact_folder)

    def blob_store(self) -> BlobStore:
        """The blob store of the artifact root; an object store URI with an unknown scheme or no bucket
        is a ConfigError (reaching it is checked before its first use)."""
        from mltrain.workspace.blobs import FolderBlobStore

        if isinstance(self.artifact_root, Path):
            return FolderBlobStore(self.artifact_root)
        from mltrain.workspace.datastores import artifact_store
        from mltrain.workspace.object_blobs import ObjectBlobStore

        return ObjectBlobStore(artifact_store(self.artifact_root), self.root / BLOB_CACHE)


def exists(settings: WorkspaceSettings) -> bool:
    """Whether the workspace of ``settings`` exists (always assumed for a database server)."""
    if not settings.db_url.startswith("sqlite:///"):
        return True
    return Path(settings.db_url.removeprefix("sqlite:///")).is_file()


class Workspace:
    """Entry point to everything recorded: runs, metrics, snapshots, blobs, models, endpoints,
    environments, data assets. Each store owns its tables and returns frozen records; nothing else
    reads or writes the tables."""

    def __init__(self, settings: WorkspaceSettings, create: bool = True) -> None:
        from mltrain.workspace.db import Database

        self.settings = settings
        self.blobs: BlobStore = settings.blob_store()  # a bad artifact root fails before anything is made
        self.is_empty = not create and not exists(settings)
        if self.is_empty:  # read as an empty workspace; nothing is created on disk
            self.db: Database = Database("sqlite://")
        else:
            settings.root.mkdir(parents=True, exist_ok=True)
            self.db = Database(settings.db_url)

    @classmethod
    def open(
        cls, root: str | None = None, db_url: str | None = None, artifact_root: str | None = None, create: bool = True
    ) -> Workspace:
        """The workspace at the resolved location; with ``create=False`` a missing one reads as an
        empty workspace and nothing is created (read-only commands)."""
        return cls(WorkspaceSettings.resolve(root, db_url, artifact_root), create=create)

    @property
    def root(self) -> Path:
        return self.settings.root

    def run_dir(self, run_id: str) -> Path:
        """The local folder of a run (the script's working directory for local compute)."""
        return self.settings.root / "runs" / run_id

    @cached_property
    def runs(self) -> RunStore:
        from mltrain.workspace.runs import RunStore

        return RunStore(self.db)

    @cached_property
    def metrics(self) -> MetricStore:
        from mltrain.workspace.metrics import MetricStore

        return MetricStore(self.db)

    @cached_property
    def snapshots(self) -> SnapshotStore:
        from mltrain.workspace.snapshots import SnapshotStore

        return SnapshotStore(self.db, self.blobs)

    @cached_property
    def data(self) -> DataAssetStore:
        from mltrain.workspace.data import DataAssetStore

        return DataAssetStore(self.db)

    @cached_property
    def models(self) -> ModelStore:
        from mltrain.workspace.models import ModelStore

        return ModelStore(self.db)

    @cached_property
    def endpoints(self) -> EndpointStore:
        from mltrain.workspace.endpoints import EndpointStore

        return EndpointStore(self.db)

    @cached_property
    def environments(self) -> EnvironmentStore:
        from mltrain.workspace.environments import EnvironmentStore

        return EnvironmentStore(self.db)
