"""Snapshots of a job's source folder: ignore rules, size limits, content-addressed storage.

A snapshot is a manifest (path, sha256, size, mode of every file) stored as a blob; its id is the
manifest's sha256, so an unchanged folder gives the same id and adds nothing to the store.
Ignore files (gitignore syntax) are read in every folder, as Azure ML does: ``.amlignore`` or
``.mltrainignore`` where a folder has one, else its ``.gitignore``; ``.git``, ``__pycache__``,
mltrain's own workspace folders and the top-level ``outputs/`` and ``logs/`` are always left out.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mltrain.errors import NotFoundError, SnapshotError, WorkspaceError
from mltrain.workspace import tables as t
from mltrain.workspace.blobs import BlobStore, check_sha256
from mltrain.workspace.db import Database, has_prefix, now, upsert
from mltrain.workspace.paths import folder_size, link_out, safe_join

OWN_IGNORE_FILES = (".mltrainignore", ".amlignore")  # in a folder that has one, .gitignore is not read
GIT_IGNORE = ".gitignore"
IGNORE_FILES = (*OWN_IGNORE_FILES, GIT_IGNORE)
ALWAYS_IGNORED = (".git/", "__pycache__/", "*.pyc", ".mltrain/")
RUN_OWNED = ("outputs/", "logs/")  # at the top of the source folder: what a run writes, never snapshotted
ALWAYS = "always left out"
RUN_OWNED_RULE = "top-level outputs/ and logs/ hold what a run writes"
SYMLINK_OUT = "a symlink out of the source folder"
ID_PREFIX = re.compile(r"[0-9a-f]{1,64}")  # a snapshot id (the manifest's sha256) or its start
MODE_KEPT = 0o755  # of a stored file mode: read and execute bits; never setuid, setgid, sticky or group/other write


def restored_mode(mode: int) -> int:
    """The permissions a restored file gets from its stored ``mode``: its read and execute bits, plus
    write for its owner (a stored mode is untrusted: never setuid/setgid/sticky, group- or world-writable)."""
    return (mode & MODE_KEPT) | stat.S_IWUSR


def _manifest_entry(snapshot_id: str, entry: Any) -> SnapshotFile:
    """One ``[path, sha256, size, mode]`` entry of a manifest, its types and blob name checked."""
    if (
        not isinstance(entry, list)
        or len(entry) != 4
        or not isinstance(entry[0], str)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in entry[2:])
    ):
        raise WorkspaceError(
            f"the manifest of snapshot {snapshot_id} is damaged: {str(entry)[:200]!r} is not "
            "[path, sha256, size, mode]",
            hint="the workspace record was tampered with or damaged; run `mltrain workspace check`",
        )
    return SnapshotFile(entry[0], check_sha256(entry[1]), entry[2], entry[3])


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
    left_out: tuple[str, ...] = ()  # run-owned folders (outputs/, logs/) found at the top and left out
    skipped: tuple[str, ...] = field(default=(), compare=False)  # symlinks out of the folder, not stored

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Entry:
    """A file or folder of a source folder: included, or left out by ``rule``."""

    path: str  # relative, '/'-separated; a folder ends with '/'
    size: int  # bytes (of everything under it, for a folder)
    files: int  # 1 for a file; how many files a folder holds
    rule: str | None  # why it is left out (ignore file and pattern), None when included


def _spec(lines: list[str]) -> Any:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _decision(spec: Any, path: str) -> tuple[bool, str] | None:
    """(ignored?, pattern) of the last pattern of ``spec`` that matches ``path``, None if none does."""
    found = None
    for pattern in spec.patterns:
        if pattern.include is not None and pattern.match_file(path) is not None:
            found = (bool(pattern.include), str(pattern.pattern))
    return found


def scan(
    source_dir: Path,
    exclude: tuple[Path, ...] = (),
    report: bool = False,
    warn: Callable[[str], None] | None = None,
) -> list[tuple[str, Path, Entry]]:
    """Walk ``source_dir`` with its ignore rules: (relative path, absolute path, entry) of every
    file kept and, with ``report``, of every file and folder left out, with the rule that did it.

    Rules as Azure ML applies them: in a folder with ``.amlignore`` or ``.mltrainignore`` those are
    read instead of its ``.gitignore``; a deeper folder's rules override its parents'
    (``!pattern`` re-includes); ``.git``, ``__pycache__``, ``.mltrain`` and the top-level
    ``outputs/`` and ``logs/`` are always left out. A symlink (to a file or a folder) is followed
    only when it resolves inside ``source_dir`` (stored under the link's name); one pointing outside
    is left out and reported through ``warn``.
    """
    always = _spec(list(ALWAYS_IGNORED))
    run_owned = _spec([f"/{d}" for d in RUN_OWNED])
    specs: list[tuple[str, str, Any]] = []  # (folder prefix, ignore file, spec), outermost first
    excluded = {os.path.realpath(p) for p in exclude}
    found: list[tuple[str, Path, Entry]] = []
    top = source_dir.resolve()
    seen: set[str] = set()

    def rule_for(rel: str, is_dir: bool) -> str | None:
        candidate = rel + "/" if is_dir else rel
        if always.match_file(candidate):
            return f"{ALWAYS}: {', '.join(ALWAYS_IGNORED)}"
        if run_owned.match_file(candidate):
            return RUN_OWNED_RULE
        verdict: str | None = None
        for base, source, spec in specs:
            if base and not candidate.startswith(base):
                continue
            decided = _decision(spec, candidate[len(base) :])
            if decided is not None:
                verdict = f"{base}{source}: {decided[1]}" if decided[0] else None
        return verdict

    for dirpath, dirnames, filenames in os.walk(source_dir, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink back into a folder already walked
            dirnames[:] = []
            continue
        seen.add(real)
        rel_dir = os.path.relpath(dirpath, source_dir)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        filenames = [
            n for n in filenames if n not in IGNORE_FILES or not link_out(top, Path(dirpath, n), prefix + n, warn)
        ]
        own = [name for name in OWN_IGNORE_FILES if name in filenames]
        for name in own or ([GIT_IGNORE] if GIT_IGNORE in filenames else []):
            lines = Path(dirpath, name).read_text(errors="replace").splitlines()
            specs.append((prefix, name, _spec(lines)))
        kept_dirs = []
        for d in sorted(dirnames):
            full_dir = os.path.join(dirpath, d)
            if os.path.realpath(full_dir) in excluded:
                rule = "mltrain's workspace"
            elif link_out(top, Path(full_dir), prefix + d + "/", warn):
                rule = SYMLINK_OUT
            else:
                rule = rule_for(prefix + d, True)
            if rule is None:
                kept_dirs.append(d)
            elif report and rule is not None:
                size, count = folder_size(Path(full_dir))
                found.append((prefix + d + "/", Path(full_dir), Entry(prefix + d + "/", size, count, rule)))
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            full = Path(dirpath, name)
            if link_out(top, full, prefix + name, warn):
                rule: str | None = SYMLINK_OUT
            else:
                rule = rule_for(prefix + name, False)
            if rule is None and not full.is_file():
                continue
            if rule is None or report:
                size = full.stat().st_size if rule is None else (full.lstat().st_size if full.exists() else 0)
                found.append((prefix + name, full, Entry(prefix + name, size, 1, rule)))
    return found


def list_files(
    source_dir: Path, exclude: tuple[Path, ...] = (), warn: Callable[[str], None] | None = None
) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of every file of ``source_dir`` that the ignore rules keep."""
    return [(rel, full) for rel, full, _ in scan(source_dir, exclude, warn=warn)]


def run_owned_present(source_dir: Path) -> tuple[str, ...]:
    """The run-owned folders (outputs/, logs/) at the top of ``source_dir``, which snapshots leave out."""
    return tuple(d for d in RUN_OWNED if (source_dir / d.rstrip("/")).is_dir())


def _too_big(source_dir: Path, files: list[tuple[str, Path, int]], max_files: int, max_bytes: int) -> SnapshotError:
    total = sum(size for _, _, size in files)
    folders: dict[str, int] = {}
    for rel, _, size in files:
        if "/" in rel:
            top = rel.split("/", 1)[0] + "/"
            folders[top] = folders.get(top, 0) + size
    largest = sorted(files, key=lambda f: -f[2])[:5]
    big_dirs = sorted(folders.items(), key=lambda kv: -kv[1])[:5]
    counts: dict[str, int] = {}
    for rel, _, _ in files:
        parent = rel.rsplit("/", 1)[0] + "/" if "/" in rel else "./"
        counts[parent] = counts.get(parent, 0) + 1
    crowded = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    lines = [
        f"the snapshot of {source_dir} is too large: {len(files)} files, {total / 1e6:.1f} MB "
        f"(limits: {max_files} files, {max_bytes / 1e6:.0f} MB)",
        "largest files: " + ", ".join(f"{rel} ({size / 1e6:.1f} MB)" for rel, _, size in largest),
    ]
    if big_dirs:
        lines.append("largest folders: " + ", ".join(f"{d} ({size / 1e6:.1f} MB)" for d, size in big_dirs))
    if len(files) > max_files:
        lines.append("folders with the most files: " + ", ".join(f"{d} ({n} files)" for d, n in crowded))
    return SnapshotError(
        "\n".join(lines),
        hint=f"list what the job does not need in {source_dir / '.mltrainignore'} or .amlignore (gitignore "
        f"syntax; `mltrain snapshots preview {source_dir}` shows what is included and why), "
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
        return Snapshot(snap_id, str(src), tuple(files), run_owned_present(src), tuple(skipped))

    def get(self, snapshot_id: str) -> Snapshot:
        """The snapshot whose id is or starts with ``snapshot_id`` (hex), its manifest checked against
        the id and every entry's types and blob name checked."""
        if not isinstance(snapshot_id, str) or not ID_PREFIX.fullmatch(snapshot_id):
            raise NotFoundError(
                f"{str(snapshot_id)[:100]!r} is not a snapshot id: one is 64 hex characters (or their start)",
                hint="see `mltrain runs show ID` for a run's snapshot",
            )
        with self.db.read() as conn:
            rows = conn.execute(select(t.snapshots).where(has_prefix(t.snapshots.c.id, snapshot_id)).limit(2)).all()
        if not rows:
            raise NotFoundError(f"no snapshot {snapshot_id!r} in this workspace", hint="see `mltrain runs show ID`")
        if len(rows) > 1:
            raise NotFoundError(f"{snapshot_id!r} matches several snapshots", hint="give more of the id")
        row = rows[0]
        try:
            entries = json.loads(self.blobs.read_bytes(row.id))
        except ValueError:
            entries = None
        if not isinstance(entries, list):
            raise WorkspaceError(
                f"the manifest of snapshot {row.id} is damaged: not a JSON list",
                hint="the workspace record was tampered with or damaged; run `mltrain workspace check`",
            )
        return Snapshot(row.id, row.source_dir, tuple(_manifest_entry(row.id, e) for e in entries))

    def restore(self, snapshot_id: str, dest: str | os.PathLike[str]) -> Snapshot:
        """Write the files of a snapshot into ``dest`` (created if needed); a stored path that is
        absolute, holds ``..`` or resolves outside ``dest`` is refused before anything is written. Each
        file is checked against its hash as it is copied (a changed blob is an error and leaves no file)
        and gets :func:`restored_mode` of its stored mode."""
        snap = self.get(snapshot_id)
        root = Path(dest)
        root.mkdir(parents=True, exist_ok=True)
        for f in snap.files:
            safe_join(root, f.path)
        for f in snap.files:
            target = safe_join(root, f.path)
            self.blobs.copy_to(f.sha256, target)
            os.chmod(target, restored_mode(f.mode))
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
