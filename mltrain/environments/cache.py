"""The machine-wide environment cache folder, cross-process build locks, and the uv and Python
executables builds use."""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from mltrain.errors import EnvironmentSpecError
from mltrain.remote.cachedir import cache_dir


def cache_root() -> Path:
    """``$MLTRAIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/mltrain``, else ``~/.cache/mltrain``."""
    return Path(cache_dir())


@contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) across processes.

    When another process holds it, ``on_wait`` is called once before blocking.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def try_lock(path: Path) -> int | None:
    """Take the lock of ``path`` without waiting: an open descriptor (close it to release), else None."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@cache
def process_started_at() -> float:
    """When this process started (epoch seconds); "made by this command" means made after it."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])  # since boot, in clock ticks
        # the boot time from the clock since boot, not /proc/stat's btime: that is whole seconds, which
        # made a process started within a second of a build think that build was its own
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


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


def _pyenv_root() -> str:
    return os.environ.get("PYENV_ROOT") or os.path.join(os.path.expanduser("~"), ".pyenv")


def _candidates(version: str) -> list[str]:
    found = [shutil.which(f"python{version}") or ""]
    found += sorted(glob.glob(f"{_pyenv_root()}/versions/{version}.*/bin/python{version}"), reverse=True)
    found += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    return [c for c in dict.fromkeys(found) if c and os.path.exists(c)]


def available_pythons() -> list[str]:
    """X.Y versions that look installed (PATH, pyenv, /usr): for messages, nothing is run."""
    names: set[str] = set()
    dirs = os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/usr/local/bin"]
    for d in dict.fromkeys(dirs):
        names.update(os.path.basename(p)[6:] for p in glob.glob(os.path.join(d, "python3.*")))
    names.update(os.path.basename(p) for p in glob.glob(f"{_pyenv_root()}/versions/3.*"))
    versions = {".".join(n.split(".")[:2]) for n in names if re.match(r"^3\.\d+(\.|$)", n)}
    versions.add(f"{sys.version_info.major}.{sys.version_info.minor}")
    return sorted(versions, key=lambda v: tuple(int(x) for x in v.split(".")))


@cache
def find_python(version: str) -> str:
    """An interpreter of Python ``version`` (X.Y) on this machine; nothing is downloaded."""
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
        hint=f"install Python {version} (e.g. with pyenv), or set environment.python to an installed version: "
        + ", ".join(available_pythons()),
    )
