"""Workspace integrity check and online backup.

``check_workspace``: the database's own integrity check (SQLite), every blob's content against its
sha256 name, every blob a record refers to, and runs whose folder is gone. ``backup_workspace``: a
consistent copy of the database taken with SQLite's online backup API while runs keep writing, then
the artifact blobs (written before any record names them, so every blob the copy refers to is copied).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from mltrain.errors import WorkspaceError
from mltrain.workspace import tables as t
from mltrain.workspace.blobs import is_sha256
from mltrain.workspace.db import is_damage, sqlite_check

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


@dataclass
class CheckReport:
    """What ``mltrain workspace check`` found; ``ok`` when nothing is damaged or missing."""

    database: list[str] = field(default_factory=list)  # integrity problems ("ok" is not listed)
    bad_blobs: list[str] = field(default_factory=list)  # sha256 names whose content differs
    missing_blobs: list[str] = field(default_factory=list)  # referred to by a record, not on disk
    bad_names: list[str] = field(default_factory=list)  # blob names in records that are not a sha256 (repr)
    missing_run_dirs: list[str] = field(default_factory=list)  # run ids whose local folder is gone
    blobs_checked: int = 0
    runs_checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.database or self.bad_blobs or self.missing_blobs or self.bad_names)


def _integrity(ws: Workspace) -> list[str]:
    if ws.db.path is None:
        return []  # a database server checks its own storage
    return sqlite_check(ws.db.path, "integrity_check")


def _referenced(ws: Workspace, report: CheckReport) -> set[str]:
    """The blob names records refer to (a name that is not a sha256 goes to ``report.bad_names``)."""
    names: list[object] = []
    with ws.db.read() as conn:
        names.extend(conn.execute(select(t.artifacts.c.sha256)).scalars())
        names.extend(conn.execute(select(t.model_files.c.sha256)).scalars())
        snapshot_ids = list(conn.execute(select(t.snapshots.c.id)).scalars())
    names.extend(snapshot_ids)
    names.extend(ws.data.workspace_blobs())
    for snap_id in snapshot_ids:
        if not is_sha256(snap_id):
            continue
        try:
            names.extend(entry[1] for entry in json.loads(ws.blobs.local_file(snap_id).read_bytes()))
        except (OSError, ValueError, IndexError, TypeError, WorkspaceError):
            pass  # missing or damaged manifest: reported as a missing or bad blob
    report.bad_names = sorted({repr(n)[:100] for n in names if not is_sha256(n)})
    return {n for n in names if is_sha256(n)}  # type: ignore[misc]


def check_workspace(ws: Workspace) -> CheckReport:
    """Check the database, every blob and every run folder; nothing is changed."""
    report = CheckReport(database=_integrity(ws))
    present: set[str] = set()
    for name in ws.blobs.names():
        present.add(name)
        report.blobs_checked += 1
        try:
            intact = ws.blobs.verify(name)
        except WorkspaceError:
            intact = False
        if not intact:
            report.bad_blobs.append(name)
    try:
        report.missing_blobs = sorted(_referenced(ws, report) - present)
        with ws.db.read() as conn:
            rows = conn.execute(select(t.runs.c.id, t.runs.c.run_dir).order_by(t.runs.c.id)).all()
    except WorkspaceError as exc:  # a damaged database whose records cannot be read: what was found so far
        if not report.database:
            raise
        report.database.append(f"records unreadable: {exc.message}")
        return report
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
    The copy is made in a folder beside ``dest`` and renamed to it only when complete and its database
    passes SQLite's integrity check, so a failed backup (a damaged database, a full disk) leaves nothing.
    """
    if ws.db.path is None:
        raise WorkspaceError(
            f"the workspace database {ws.db.safe_url} is not a SQLite file",
            hint="back a database server up with its own tools (e.g. pg_dump), and copy the artifact root",
        )
    root = Path(dest).absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise WorkspaceError(f"the backup folder {root} is not empty", hint="give a new or empty folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    work = root.parent / f".{root.name[:40]}.{secrets.token_hex(4)}.part"
    work.mkdir()
    copied = total = 0
    try:
        _copy_database(ws, work / "mltrain.db")
        for name in ws.blobs.names():  # a blob being written is not listed (no record names it yet)
            out = work / "artifacts" / "blobs" / "sha256" / name[:2] / name[2:]
            total += 1
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ws.blobs.local_file(name), out)
            copied += 1
        os.replace(work, root)  # onto a missing or empty folder
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BackupReport(root / "mltrain.db", copied, total)


def _copy_database(ws: Workspace, target: Path) -> None:
    """SQLite's online backup of the workspace database into ``target`` (a consistent copy while writers
    go on), refused unless the copy passes the integrity check."""
    assert ws.db.path is not None
    src = sqlite3.connect(f"file:{ws.db.path}?mode=ro", uri=True, timeout=60)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            problems = [r[0] for r in dst.execute("PRAGMA integrity_check")]
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise WorkspaceError(f"cannot back up the workspace database {ws.db.path}: {exc}") from None
        problems = [str(exc)]
    finally:
        src.close()
    if problems != ["ok"]:
        raise WorkspaceError(
            f"the workspace database {ws.db.path} is damaged, so no backup was made: {'; '.join(problems[:5])}",
            hint="run `mltrain workspace check` to see what is affected; restore the database from an earlier backup",
        )
