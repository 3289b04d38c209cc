"""The workspace: a database (SQLite file by default) and an artifact root (a folder by default).

``Workspace.open()`` resolves the location from its arguments, then ``MLTRAIN_WORKSPACE``,
``MLTRAIN_DB_URL`` and ``MLTRAIN_ARTIFACT_ROOT``, then ``./.mltrain``; the schema is created or
upgraded on open. Opening only opens the store: recovering runs whose driver died is the caller's
explicit step (``mltrain.runs.recovery.recover_orphans``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrain.workspace.blobs import BlobStore
    from mltrain.workspace.db import Database
    from mltrain.workspace.metrics import MetricStore
    from mltrain.workspace.runs import RunStore
    from mltrain.workspace.snapshots import SnapshotStore


@dataclass(frozen=True)
class WorkspaceSettings:
    root: Path  # local folder: run folders, the default database and artifact root
    db_url: str
    artifact_root: Path

    @classmethod
    def resolve(
        cls, root: str | None = None, db_url: str | None = None, artifact_root: str | None = None
    ) -> WorkspaceSettings:
        base = Path(root or os.environ.get("MLTRAIN_WORKSPACE") or ".mltrain").expanduser().absolute()
        url = db_url or os.environ.get("MLTRAIN_DB_URL") or f"sqlite:///{base / 'mltrain.db'}"
        art = artifact_root or os.environ.get("MLTRAIN_ARTIFACT_ROOT") or str(base / "artifacts")
        return cls(base, url, Path(art).expanduser().absolute())


class Workspace:
    """Entry point to everything recorded: runs, metrics, snapshots, blobs, models."""

    def __init__(self, settings: WorkspaceSettings) -> None:
        from mltrain.workspace.blobs import BlobStore
        from mltrain.workspace.db import Database

        self.settings = settings
        settings.root.mkdir(parents=True, exist_ok=True)
        self.db: Database = Database(settings.db_url)
        self.blobs: BlobStore = BlobStore(settings.artifact_root)

    @classmethod
    def open(cls, root: str | None = None, db_url: str | None = None, artifact_root: str | None = None) -> Workspace:
        return cls(WorkspaceSettings.resolve(root, db_url, artifact_root))

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
