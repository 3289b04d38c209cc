"""Small JSON files of the cache folder (:func:`~mltrain.remote.cachedir.cache_dir`) that make
later commands faster (``preconnect.json``, ``ssh-python.json``, ``composed-*.json``): read as a hint, never trusted and
never fatal (a file that is missing, damaged, of another shape or larger than :data:`MAX_BYTES`
reads as nothing), written atomically (a reader sees the old file or the new one). Standard library only
(the entry point reads ``preconnect.json`` before anything else: :mod:`~mltrain.compute.ssh.prespawn`)."""

from __future__ import annotations

import json
import os
import stat
from typing import Any, TypeVar

from mltrain.remote.cachedir import cache_dir

MAX_BYTES = 1 << 20  # far above what mltrain writes: a larger file is not read
T = TypeVar("T", dict[str, Any], list[Any])


def load(name: str, kind: type[T], private: bool = False) -> T:
    """The JSON value of the cache folder's file ``name`` when it is a ``kind`` (dict or list); an
    empty one otherwise (no file, not a regular file, over :data:`MAX_BYTES`, not JSON, another type;
    ``private``: another user's, or writable by group or others, as ssh treats its config)."""
    try:
        fd = os.open(os.path.join(cache_dir(), name), os.O_RDONLY | os.O_NONBLOCK)  # a FIFO there does not block
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or (private and (st.st_uid != os.geteuid() or st.st_mode & 0o022)):
                return kind()
            data = f.read(MAX_BYTES + 1)
        value = json.loads(data) if len(data) <= MAX_BYTES else None
    except (OSError, ValueError, RecursionError):  # (ValueError: not JSON, not UTF-8, a number too long)
        return kind()
    return value if isinstance(value, kind) else kind()


def store(name: str, value: Any) -> None:
    """Write ``value`` as JSON to the cache folder's file ``name``, atomically (beside it first, then
    renamed); failures are ignored (a cache only)."""
    import tempfile

    folder = cache_dir()
    path = os.path.join(folder, name)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def keep_newest(prefix: str, keep: int) -> None:
    """Remove the cache folder's files named ``prefix*`` but the ``keep`` last written."""
    folder = cache_dir()
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
        if len(names) <= keep:
            return
        dated = sorted(((os.stat(os.path.join(folder, n)).st_mtime_ns, n) for n in names), reverse=True)
    except OSError:
        return
    for _, name in dated[keep:]:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass
