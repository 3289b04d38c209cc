"""The machine-wide environment cache folder, cross-process build locks, and the uv and Python
executables builds use."""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from mltrain.errors import EnvironmentSpecError


def cache_root() -> Path:
    """``$MLTRAIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/mltrain``, else ``~/.cache/mltrain``."""
    explicit = os.environ.get("MLTRAIN_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "mltrain").absolute()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@cache
def uv_bin() -> str:
    """The uv executable (from the ``uv`` package mltrain depends on, else the PATH)."""
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise EnvironmentSpecError("uv is not installed", hint="pip install uv")


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _candidates(version: str) -> list[str]:
    home = os.path.expanduser("~")
    found = [shutil.which(f"python{version}") or ""]
    found += sorted(glob.glob(f"{home}/.pyenv/versions/{version}.*/bin/python{version}"), reverse=True)
    found += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    return [c for c in found if c and os.path.exists(c)]


@cache
def find_python(version: str) -> str:
    """An interpreter of Python ``version`` (X.Y) on this machine; nothing is downloaded."""
    import sys

    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    for candidate in _candidates(version):
        if _version_of(candidate) == version:
            return candidate
    try:
        out = subprocess.run(
            [uv_bin(), "python", "find", version, "--no-python-downloads"], capture_output=True, text=True, timeout=60
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    raise EnvironmentSpecError(
        f"Python {version} is not available on this machine (mltrain does not download interpreters)",
        hint=f"install Python {version}, or set environment.python to an installed version "
        f"(this one runs {sys.version_info.major}.{sys.version_info.minor})",
    )


def dir_size(path: Path) -> int:
    """Bytes used by the files under ``path`` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
