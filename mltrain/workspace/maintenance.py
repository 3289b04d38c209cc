"""Workspace integrity check and online backup.

``check_workspace``: the database's own integrity check (SQLite), every blob's content against its
sha256 name, every blob a record refers to, and runs whose folder is gone. ``backup_workspace``: a
consistent copy of the database taken with SQLite's online backup API while runs keep writing, then
the artifact blobs (written before any record names them, so every blob the copy refers to is copied).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from mltrain.errors import WorkspaceError
from mltrain.workspace import tables as t
from mltrain.workspace.blobs import sha256_file

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


@dataclass
class CheckReport:
    """What ``mltrain workspace check`` found; ``ok`` when nothing is damaged or missing."""

    database: list[str] = field(default_factory=list)  # integrity problems ("ok" is not listed)
    bad_blobs: list[str] = field(default_factory=list)  # sha256 names whose content differs
    missing_blobs: list[str] = field(default_factory=list)  # referred to by a record, not on disk
    missing_run_dirs: list[str] = field(default_factory=list)  # run ids whose local folder is gone
    blobs_checked: int = 0
    runs_checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.database or self.bad_blobs or self.missing_blobs)


def _integrity(ws: Workspace) -> list[str]:
    if ws.db.path is None:
        return []  # a database server checks its own storage
    with sqlite3.connect(f"file:{ws.db.path}?mode=ro", uri=True) as conn:
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            return [str(exc)]
    return [] if rows == ["ok"] else rows


def _referenced(ws: Workspace) -> set[str]:
    refs: set[str] = set()
    with ws.db.read() as conn:
        refs.update(conn.execute(select(t.artifacts.c.sha256)).scalars())
        refs.update(conn.execute(select(t.model_files.c.sha256)).scalars())
        snapshot_ids = list(conn.execute(select(t.snapshots.c.id)).scalars())
    refs.update(snapshot_ids)
    refs.update(ws.data.workspace_blobs())
    for snap_id in snapshot_ids:
        path = ws.blobs.path(snap_id)
        try:
            refs.update(entry[1] for entry in json.loads(path.read_bytes()))
        except (OSError, ValueError, IndexError, TypeError):
            pass  # missing or damaged manifest: reported as a missing or bad blob
    return refs


def check_workspace(ws: Workspace) -> CheckReport:
    """Check the database, every blob and every run folder; nothing is changed."""
    report = CheckReport(database=_integrity(ws))
    blob_root = ws.blobs.root / "blobs" / "sha256"
    present: set[str] = set()
    if blob_root.is_dir():
        for sub in sorted(blob_root.iterdir()):
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for blob in sorted(sub.iterdir()):
                name = sub.name + blob.name
                if not blob.is_file() or len(name) != 64:
                    continue
                present.add(name)
                report.blobs_checked += 1
                if sha256_file(blob) != name:
                    report.bad_blobs.append(name)
    report.missing_blobs = sorted(_referenced(ws) - present)
    with ws.db.read() as conn:
        rows = conn.execute(select(t.runs.c.id, t.runs.c.run_dir).order_by(t.runs.c.id)).all()
    report.runs_checked = len(rows)
    report.missing_run_dirs = [r.id for r in rows if r.run_dir and not Path(r.run_dir).is_dir()]
    return report


@dataclass
class BackupReport:
    database: Path
    blobs_copied: int
    blobs_total: int


def backup_workspace(ws: Workspace, dest: str | os.PathLike[str]) -> BackupReport:
    """Copy the database (online, consistent) and the artifact blobs into ``dest``, a new or empty folder.

    ``dest`` is then a workspace of its own (``mltrain --workspace DEST ...``); run folders are not copied.
    """
    if ws.db.path is None:
        raise WorkspaceError(
            f"the workspace database {ws.db.safe_url} is not a SQLite file",
            hint="back a database server up with its own tools (e.g. pg_dump), and copy the artifact root",
        )
    root = Path(dest).absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise WorkspaceError(f"the backup folder {root} is not empty", hint="give a new or empty folder")
    root.mkdir(parents=True, exist_ok=True)
    target = root / "mltrain.db"
    src = sqlite3.connect(f"file:{ws.db.path}?mode=ro", uri=True, timeout=60)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # SQLite's online backup: a consistent copy, writers are not stopped
        problems = [r[0] for r in dst.execute("PRAGMA integrity_check")]
    finally:
        dst.close()
        src.close()
    if problems != ["ok"]:
        raise WorkspaceError(
            f"the backup {target} failed its integrity check: {'; '.join(problems[:5])}",
            hint="the workspace database itself is damaged: run `mltrain workspace check`",
        )
    copied = total = 0
    blob_root = ws.blobs.root / "blobs"
    for dirpath, _dirs, files in os.walk(blob_root):
        for name in files:
            if name.startswith(".incoming-"):
                continue  # a blob being written: not referenced by any record yet
            src_file = Path(dirpath, name)
            out = root / "artifacts" / "blobs" / src_file.relative_to(blob_root)
            total += 1
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src_file, out)
            copied += 1
    return BackupReport(target, copied, total)
