"""Snapshots of a job's source folder: ignore rules, size limits, content-addressed storage.

A snapshot is a manifest (path, sha256, size, mode of every file) stored as a blob; its id is the
manifest's sha256, so an unchanged folder gives the same id and adds nothing to the store.
Ignore files (gitignore syntax) are read in every folder: ``.mltrainignore``, ``.amlignore`` and
``.gitignore``; ``.git``, ``__pycache__`` and mltrain's own workspace folders are always left out.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mltrain.errors import NotFoundError, SnapshotError
from mltrain.workspace import tables as t
from mltrain.workspace.blobs import BlobStore
from mltrain.workspace.db import Database, now, upsert
from mltrain.workspace.paths import link_out, safe_join

IGNORE_FILES = (".mltrainignore", ".amlignore", ".gitignore")
ALWAYS_IGNORED = (".git/", "__pycache__/", "*.pyc", ".mltrain/")


@dataclass(frozen=True)
class SnapshotFile:
    path: str  # relative, '/'-separated
    sha256: str
    size: int
    mode: int


@dataclass(frozen=True)
class Snapshot:
    id: str
    source_dir: str
    files: tuple[SnapshotFile, ...]
    skipped: tuple[str, ...] = field(default=(), compare=False)  # symlinks out of the folder, not stored

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _spec(lines: list[str]) -> Any:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def list_files(
    source_dir: Path, exclude: tuple[Path, ...] = (), warn: Callable[[str], None] | None = None
) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of every file of ``source_dir`` that the ignore rules keep.

    A symlink is followed only when it resolves inside ``source_dir`` (its target's content is
    stored under the link's name); one pointing outside is skipped and reported through ``warn``.
    """
    specs: list[tuple[str, Any]] = [("", _spec(list(ALWAYS_IGNORED)))]
    excluded = {os.path.realpath(p) for p in exclude}
    found: list[tuple[str, Path]] = []
    top = source_dir.resolve()
    seen: set[str] = set()

    def ignored(rel: str, is_dir: bool) -> bool:
        candidate = rel + "/" if is_dir else rel
        for base, spec in specs:
            if base and not candidate.startswith(base):
                continue
            if spec.match_file(candidate[len(base) :]):
                return True
        return False

    for dirpath, dirnames, filenames in os.walk(source_dir, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink back into a folder already walked
            dirnames[:] = []
            continue
        seen.add(real)
        rel_dir = os.path.relpath(dirpath, source_dir)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        lines = []
        for name in IGNORE_FILES:
            if name in filenames and not link_out(top, Path(dirpath, name), prefix + name, warn):
                lines += Path(dirpath, name).read_text(errors="replace").splitlines()
        if lines:
            specs.append((prefix, _spec(lines)))
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not ignored(prefix + d, True)
            and os.path.realpath(os.path.join(dirpath, d)) not in excluded
            and not link_out(top, Path(dirpath, d), prefix + d + "/", warn)
        )
        for name in sorted(filenames):
            full = Path(dirpath, name)
            if not ignored(prefix + name, False) and not link_out(top, full, prefix + name, warn) and full.is_file():
                found.append((prefix + name, full))
    return found


def _too_big(source_dir: Path, files: list[tuple[str, Path, int]], max_files: int, max_bytes: int) -> SnapshotError:
    total = sum(size for _, _, size in files)
    folders: dict[str, int] = {}
    for rel, _, size in files:
        if "/" in rel:
            top = rel.split("/", 1)[0] + "/"
            folders[top] = folders.get(top, 0) + size
    largest = sorted(files, key=lambda f: -f[2])[:5]
    big_dirs = sorted(folders.items(), key=lambda kv: -kv[1])[:5]
    lines = [
        f"the snapshot of {source_dir} is too large: {len(files)} files, {total / 1e6:.1f} MB "
        f"(limits: {max_files} files, {max_bytes / 1e6:.0f} MB)",
        "largest files: " + ", ".join(f"{rel} ({size / 1e6:.1f} MB)" for rel, _, size in largest),
    ]
    if big_dirs:
        lines.append("largest folders: " + ", ".join(f"{d} ({size / 1e6:.1f} MB)" for d, size in big_dirs))
    return SnapshotError(
        "\n".join(lines),
        hint=f"list what the job does not need in {source_dir / '.mltrainignore'} (gitignore syntax), "
        "or raise job.snapshot.max_size_mb / job.snapshot.max_files",
    )


class SnapshotStore:
    """Takes, records and restores snapshots in a workspace."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def take(
        self,
        source_dir: str | os.PathLike[str],
        max_files: int = 2000,
        max_size_mb: float = 300.0,
        exclude: tuple[Path, ...] = (),
    ) -> Snapshot:
        """Snapshot ``source_dir`` (limits checked before anything is stored)."""
        src = Path(source_dir).resolve()
        if not src.is_dir():
            raise SnapshotError(f"job.source_dir {src} is not a folder", hint="set job.source_dir to your code folder")
        skipped: list[str] = []
        listed = [(rel, full, full.stat().st_size) for rel, full in list_files(src, exclude, skipped.append)]
        max_bytes = int(max_size_mb * 1e6)
        if len(listed) > max_files or sum(s for _, _, s in listed) > max_bytes:
            raise _too_big(src, listed, max_files, max_bytes)
        files = []
        for rel, full, _ in listed:
            sha, size = self.blobs.put_file(full)
            files.append(SnapshotFile(rel, sha, size, stat.S_IMODE(full.stat().st_mode)))
        manifest = json.dumps([[f.path, f.sha256, f.size, f.mode] for f in files], separators=(",", ":"))
        snap_id = self.blobs.put_bytes(manifest.encode())
        with self.db.write() as conn:
            upsert(
                conn,
                t.snapshots,
                {"id": snap_id},
                {
                    "source_dir": str(src),
                    "file_count": len(files),
                    "total_bytes": sum(f.size for f in files),
                    "created_at": now(),
                },
            )
        return Snapshot(snap_id, str(src), tuple(files), tuple(skipped))

    def get(self, snapshot_id: str) -> Snapshot:
        with self.db.read() as conn:
            row = conn.execute(select(t.snapshots).where(t.snapshots.c.id.like(snapshot_id + "%"))).first()
        if row is None:
            raise NotFoundError(f"no snapshot {snapshot_id!r} in this workspace", hint="see `mltrain runs show ID`")
        entries = json.loads(self.blobs.read_bytes(row.id))
        return Snapshot(row.id, row.source_dir, tuple(SnapshotFile(*e) for e in entries))

    def restore(self, snapshot_id: str, dest: str | os.PathLike[str]) -> Snapshot:
        """Write the files of a snapshot into ``dest`` (created if needed); a stored path that is
        absolute, holds ``..`` or resolves outside ``dest`` is refused before anything is written."""
        snap = self.get(snapshot_id)
        root = Path(dest)
        root.mkdir(parents=True, exist_ok=True)
        for f in snap.files:
            safe_join(root, f.path)
        for f in snap.files:
            target = safe_join(root, f.path)
            self.blobs.copy_to(f.sha256, target)
            os.chmod(target, f.mode | stat.S_IWUSR)
        return snap


def git_info(source_dir: str | os.PathLike[str]) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``source_dir``; (None, None) outside git."""
    src = Path(source_dir).resolve()
    if not any((p / ".git").exists() for p in (src, *src.parents)):
        return None, None
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=30
        )
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
