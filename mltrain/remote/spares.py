"""Spare private copies of ``download`` inputs in a node cache (standard library only).

A copy is lent to a run folder (:func:`lend` notes its files, sizes and the file system's clock, out of
the script's reach, under ``<root>/lent/``); when the run folder goes, a copy the script left as it was
lent (no file or folder written, replaced, added or removed: sizes and change times, ``ctime``, which no
process can set back) becomes that version's spare (:func:`recycle`, ``<root>/<key>``), which the next
run takes by one rename (:func:`claim`). A copy the script touched is left to be deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from typing import Any

from mltrain.remote.ssh_host import is_blob_name

CLOCK_WAIT_S = 0.5  # how long :func:`lend` waits for the file system's clock to tick


@dataclass(frozen=True)
class Lent:
    """What is lent: the input's type, its files (checked relative path: size) and its manifest entries."""

    type: str
    files: dict[str, int]
    entries: list[Any]

    @property
    def key(self) -> str:
        """The spare's name: the same files by content give the same key."""
        return hashlib.sha256(json.dumps([self.type, self.entries]).encode()).hexdigest()


def _record(root: str, base: str) -> str:
    return os.path.join(root, "lent", hashlib.sha256(os.path.realpath(base).encode()).hexdigest())


def claim(root: str, base: str, lent: Lent) -> bool:
    """Move the spare of ``lent`` (if there is one) to ``base`` and lend it: one rename, so two runs never
    get the same copy. False when there is none (or it is on another file system: copy instead)."""
    try:
        os.rename(os.path.join(root, lent.key), base)
    except OSError:
        return False
    lend(root, base, lent)
    return True


def lend(root: str, base: str, lent: Lent) -> None:
    """Note that the private copy at ``base`` is as laid out now, with the file system's clock (``at``: the
    ctime of a write now, once the clock has moved past it, so any later change has a later ctime; it
    ticks every few ms). Nothing is noted when it does not move (the copy is then not reused)."""
    record = _record(root, base)
    os.makedirs(os.path.dirname(record), exist_ok=True)
    open(record, "w").close()  # noqa: SIM115 - a probe of the clock
    at = os.stat(record).st_ctime_ns
    deadline = time.monotonic() + CLOCK_WAIT_S
    while True:
        time.sleep(0.001)
        os.utime(record)
        if os.stat(record).st_ctime_ns > at:
            break
        if time.monotonic() > deadline:
            os.unlink(record)
            return
    with open(record, "w") as f:
        json.dump({"key": lent.key, "at": at, "files": lent.files}, f)


def untouched(base: str, files: dict[str, int], at_ns: int) -> bool:
    """Whether the copy at ``base`` holds exactly ``files`` (relative path: size), each a regular file, and
    nothing in it changed since ``at_ns`` (a write, chmod, utime, rename or new entry sets ``ctime``)."""
    try:
        st = os.lstat(base)
        if not stat.S_ISDIR(st.st_mode) or st.st_ctime_ns > at_ns:
            return False
        seen = 0
        for folder, dirs, names in os.walk(base):
            for name in dirs + names:
                st = os.lstat(os.path.join(folder, name))
                if st.st_ctime_ns > at_ns:
                    return False
                if stat.S_ISDIR(st.st_mode):
                    continue
                rel = os.path.relpath(os.path.join(folder, name), base).replace(os.sep, "/")
                if not stat.S_ISREG(st.st_mode) or files.get(rel) != st.st_size:
                    return False
                seen += 1
        return seen == len(files)
    except OSError:
        return False


def recycle(root: str, base: str) -> None:
    """Keep the copy at ``base`` as its version's spare when the script left it as it was lent."""
    record = _record(root, base)
    try:
        with open(record) as f:
            lent = json.load(f)
        os.unlink(record)
    except (OSError, ValueError):
        return
    key = lent.get("key")
    if not is_blob_name(key):  # a name in the cache, never a path
        return
    if untouched(base, dict(lent.get("files") or {}), int(lent.get("at") or 0)):
        try:
            os.rename(base, os.path.join(root, key))  # fails when one is there already
        except OSError:
            pass
