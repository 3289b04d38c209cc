"""Stored relative paths and symlinks, treated as untrusted.

Every path read back from the workspace (artifacts, snapshot manifests, model files) is joined onto a
destination with :func:`safe_join`: it must be relative, hold no ``..`` and resolve inside the
destination, else :class:`UnsafePathError`. Walking a source or run folder goes through
:func:`walk_files`, which never follows a symlink out of the folder being walked.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

from mltrain.errors import WorkspaceError


class UnsafePathError(WorkspaceError):
    """A stored path would write outside its destination."""


def check_relpath(rel: str) -> str:
    """``rel`` if it is a plain relative path (no root, drive, ``..``, NUL or empty part), else raise."""
    posix = PurePosixPath(rel)
    bad = (
        not rel
        or "\x00" in rel
        or posix.is_absolute()
        or PureWindowsPath(rel).is_absolute()
        or PureWindowsPath(rel).drive
        or rel.startswith("\\")
        or any(part == ".." for part in rel.replace("\\", "/").split("/"))
    )
    if bad:
        raise UnsafePathError(
            f"refusing the stored path {rel!r}: it is absolute or leaves its folder",
            hint="the workspace record was tampered with or damaged; run `mltrain workspace check`",
        )
    return rel


def safe_join(dest: str | os.PathLike[str], rel: str, dest_is_real: bool = False) -> Path:
    """``dest / rel`` once ``rel`` is checked and the result resolves inside ``dest`` (symlinks included).
    ``dest_is_real``: ``dest`` is resolved already (a caller that joins many paths to it)."""
    check_relpath(rel)
    root = Path(dest) if dest_is_real else Path(dest).resolve()
    joined = root / rel
    path = root
    for part in Path(rel).parts:  # no link on the way (the usual case): inside root, no full resolve
        path = path / part
        if path.is_symlink():
            break
    else:
        return joined
    target = joined.resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError(
            f"refusing the stored path {rel!r}: it resolves to {target}, outside {root}",
            hint=f"remove the symlink in {root} that points elsewhere, or choose another destination",
        )
    return joined


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (resolved, symlinks followed) is ``root`` or lies under it (``root`` resolved)."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing target, or a symlink loop
        return False
    return resolved == root or root in resolved.parents


def link_out(top: Path, full: Path, shown: str, warn: Callable[[str], None] | None) -> bool:
    """Whether ``full`` is a symlink resolving outside ``top`` (reported through ``warn`` as ``shown``)."""
    if full.is_symlink() and not inside(top, full):
        if warn:
            warn(f"skipped {shown}: a symlink to {os.readlink(full)}, outside {top}")
        return True
    return False


def walk_files(
    base: Path, warn: Callable[[str], None] | None = None, root: Path | None = None
) -> Iterator[tuple[str, Path]]:
    """(path relative to ``base``, path) of every regular file under ``base``, sorted per folder.

    A symlink (to a file or a folder) is followed only when its target resolves inside ``root``
    (default ``base``); any other link is skipped and reported through ``warn``. A link inside is
    yielded as the file it points to, so its content is what gets stored.
    """
    shown = root or base
    top = shown.resolve()
    if not base.is_dir():
        return
    if not inside(top, base):  # the folder itself (or a folder above it) is a link out
        if warn:
            warn(f"skipped {os.path.relpath(base, shown)}/: it resolves to {base.resolve()}, outside {top}")
        return
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
        here = Path(dirpath)
        real = os.path.realpath(here)
        if real in seen:  # a link back up the tree
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [
            d for d in sorted(dirnames) if not link_out(top, here / d, os.path.relpath(here / d, shown) + "/", warn)
        ]
        for name in sorted(filenames):
            full = here / name
            if not link_out(top, full, os.path.relpath(full, shown), warn) and full.is_file():
                yield full.relative_to(base).as_posix(), full


def folder_size(path: Path) -> tuple[int, int]:
    """Bytes and number of the regular files under ``path`` (a file hard-linked twice counted once;
    links are not followed): the one measure of a folder (an environment, a folder left out of a snapshot)."""
    seen: set[tuple[int, int]] = set()
    size = count = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                size, count = size + st.st_size, count + 1
    return size, count
