"""The datastore contract: where data lives (the workspace's blob store, a folder, object storage).

A datastore is rooted at a location (``url``); a key is a ``/``-separated path relative to it. Keys
are untrusted: an absolute one, one with ``..`` or an empty part is refused, and a folder never
follows a symlink out of itself. Every method raises :class:`DataError` naming the store (never a
credential) and the fix, for a missing file, a store that cannot be reached or refused access.

Content-addressed storage is the same on every store: the blob of sha256 ``h`` is the key
``blobs/sha256/h[:2]/h[2:]`` (the layout of the workspace's own blob store). Credentials never pass
through a datastore's options: they come from the environment, a profile or a file the options
name, and are read only when the store connects.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

from mltrain.errors import DataError
from mltrain.workspace.blobs import CHUNK
from mltrain.workspace.paths import UnsafePathError, check_relpath

_SHA256 = re.compile(r"[0-9a-f]{64}")

Opener = Callable[[], BinaryIO]  # opens the same content again (a local file, an object)
Counter = Callable[[int], None]  # told the bytes read, chunk by chunk (progress)


@dataclass(frozen=True)
class StoredFile:
    """A file in a datastore: its key (relative to the store's root), size and the store's checksum."""

    key: str
    size: int
    checksum: str | None = None  # the store's own, e.g. ``etag:<value>``; None where it keeps none


def check_key(key: str, where: str) -> str:
    """``key`` if it is a plain relative path, else DataError naming it and the store."""
    try:
        check_relpath(key)
        if any(part in ("", ".") for part in key.split("/")):
            raise UnsafePathError(f"{key!r} has an empty or '.' part")
        return key
    except UnsafePathError:
        raise DataError(
            f"refusing the path {key!r} in {where}: it is absolute, empty, not normalized or leaves its folder",
            hint="a data asset holds only paths relative to its folder, without '..'",
        ) from None


def blob_key(sha256: str) -> str:
    """The key of the blob with this content hash (64 lowercase hex characters)."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise DataError(f"{sha256!r} is not a sha256", hint="the workspace record was tampered with or damaged")
    return f"blobs/sha256/{sha256[:2]}/{sha256[2:]}"


class HashingReader:
    """A read-only stream over ``stream`` that counts (and, with ``hashing``, hashes with sha256)
    what passes through it."""

    def __init__(self, stream: BinaryIO, counter: Counter | None = None, hashing: bool = True) -> None:
        self._stream = stream
        self._counter = counter
        self.sha256 = hashlib.sha256() if hashing else None
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data:
            if self.sha256 is not None:
                self.sha256.update(data)
            self.size += len(data)
            if self._counter is not None:
                self._counter(len(data))
        return data

    def hexdigest(self) -> str:
        assert self.sha256 is not None, "made with hashing=False"
        return self.sha256.hexdigest()


def drain(stream: BinaryIO, counter: Counter | None = None) -> tuple[str, int]:
    """(sha256, size) of everything ``stream`` still holds, read in chunks."""
    reader = HashingReader(stream, counter)
    while reader.read(CHUNK):
        pass
    return reader.hexdigest(), reader.size


class ContentMismatch(DataError):
    """Content written or read is not the content expected (its sha256 or size differs)."""


def mismatch(key: str, where: str, expected: str, got: str) -> ContentMismatch:
    return ContentMismatch(
        f"the content of {key} in {where} is not the expected one (expected {expected}, got {got})",
        hint="the source changed while it was read, or the stored copy is damaged; nothing was kept",
    )


class Datastore(ABC):
    """A place data lives. Implementations: the workspace's blob store, a folder, object storage."""

    kind: ClassVar[str]  # workspace | folder | s3 | azure | gcs | https (recorded with each version)
    read_only: ClassVar[bool] = False

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the store's root is, for messages and records (never with a credential)."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A stream of the file's content (close it); DataError when it does not exist."""

    def open_version(self, key: str, checksum: str) -> BinaryIO:
        """``open(key)`` if the file still has the store checksum ``checksum``, else ContentMismatch."""
        now = self.info(key).checksum
        if now != checksum:
            raise mismatch(key, self.url, checksum, str(now))
        return self.open(key)

    @abstractmethod
    def info(self, key: str) -> StoredFile:
        """The file's size and checksum; DataError when it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoredFile]:
        """Every file under the folder ``prefix`` ('' = the whole store), sorted by key; keys are
        relative to the store's root. A folder that does not exist lists as empty."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the file ``key`` exists."""

    @abstractmethod
    def write(self, key: str, stream: BinaryIO, sha256: str | None = None) -> StoredFile:
        """Store ``stream`` at ``key``, atomically: readers see the whole file or none (a failure,
        or content whose sha256 is not ``sha256`` when given, leaves no file and raises)."""

    @abstractmethod
    def at(self, url: str) -> Datastore:
        """A store with the same connection options rooted at ``url`` (a location of the same kind)."""

    def put_blob(self, opener: Opener, counter: Counter | None = None) -> tuple[str, int]:
        """Store content by its sha256 (once: an existing blob is not written again); (sha256, size).

        Reads the source twice: once to hash it, once to upload it, checking it is still the same
        (a source that changed in between is refused, and nothing is stored)."""
        self._writable()
        with opener() as f:
            sha, size = drain(f, counter)
        key = blob_key(sha)
        if not self.exists(key):
            with opener() as f:
                self.write(key, f, sha256=sha)
        return sha, size

    def local_path(self, key: str) -> Path | None:
        """The file of ``key`` on this machine's file system when the store is a folder (None otherwise):
        a node that sees the same folder reads it there."""
        return None

    def signed_url(self, key: str, expires_s: int) -> str | None:
        """A URL that reads ``key`` for ``expires_s`` seconds without the store's credentials (a presigned
        GET), for a node that has none; None when the store cannot sign one. It is a short-lived bearer
        capability for that one file: hand it only to the node that reads it, never record it."""
        return None

    signs_puts = False  # whether :meth:`signed_put` gives URLs

    def signed_put(self, key: str, expires_s: int, sha256: str) -> tuple[str, dict[str, str]] | None:
        """(URL, headers) that write ``key`` once for ``expires_s`` seconds without credentials (a presigned
        PUT whose headers carry the content's sha256 where the store checks it), for a node that uploads
        a file itself; None when the store cannot sign one. Its content is trusted only after
        :meth:`adopt`."""
        return None

    def signed_post(self, prefix: str, expires_s: int, max_bytes: int) -> tuple[str, dict[str, str], str] | None:
        """(URL, form fields, the form's ``key`` prefix) of a presigned POST policy that writes objects of at
        most ``max_bytes`` each under ``prefix`` only (the node names each ``key`` with that prefix), for
        ``expires_s`` seconds without credentials: for a node whose files' hashes are not known when it
        gets the policy. None when the store cannot sign one. Its uploads are trusted only after :meth:`adopt`."""
        return None

    def adopt(self, staged: str, key: str, sha256: str) -> bool:
        """Move the uploaded ``staged`` to ``key`` if the store itself computes ``sha256`` for its content
        (without reading it here); False (and ``staged`` removed) when it does not. Only for stores
        whose :meth:`signed_put` signs."""
        raise NotImplementedError

    def remove(self, key: str) -> None:
        """Delete the file ``key`` (nothing when there is none). Only for stores whose :meth:`signed_put`
        signs (their staged uploads)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (the store may not be used afterwards)."""

    def _writable(self) -> None:
        if self.read_only:
            raise DataError(
                f"the datastore {self.url} is read-only",
                hint="store local data in the workspace (the default) or a folder or object-storage datastore",
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
