"""Content-addressed blob stores in the artifact root: ``blobs/sha256/ab/cdef...``.

:class:`BlobStore` is the one interface; :class:`FolderBlobStore` keeps blobs in a folder (the default),
:class:`mltrain.workspace.object_blobs.ObjectBlobStore` in object storage (an artifact root such as
``s3://bucket/prefix``), both passing one conformance suite. Identical content is stored once. Writes
are atomic (written aside, then renamed; one committed upload), so a blob that exists is complete.
The artifact root is shared (a team's folder or bucket, a copied workspace), so nothing read from it
is trusted: a blob name must be 64 lowercase hex characters (:func:`check_sha256`, applied by
``path``), and every read that becomes a file, code or a response checks the content against its
name (``copy_to`` and ``read_bytes`` hash what they copy; ``open`` hashes the file once per process
and version of it; :class:`HashingReader` for a blob sent elsewhere).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mltrain.errors import WorkspaceError

CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERIFIED: dict[tuple[int, int, int, int, int], str] = {}  # (dev, inode, size, mtime, ctime) -> its sha256
_VERIFIED_MAX = 65536


def is_sha256(value: object) -> bool:
    """True when ``value`` is a blob name: 64 lowercase hex characters."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def check_sha256(value: object) -> str:
    """``value`` if it is a blob name (:func:`is_sha256`), else a WorkspaceError naming it: a stored
    hash is joined onto a folder, so anything else could name a file outside the store."""
    if is_sha256(value):
        return value  # type: ignore[return-value]
    shown = repr(value) if len(repr(value)) <= 100 else repr(value)[:100] + "..."
    raise WorkspaceError(
        f"refusing the stored blob name {shown}: a sha256 is 64 hex characters",
        hint="the workspace record was tampered with or damaged; run `mltrain workspace check`",
    )


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def corrupted(sha256: str, where: str | os.PathLike[str]) -> WorkspaceError:
    """The error for blob ``sha256`` whose content (in ``where``) no longer matches its name."""
    return WorkspaceError(
        f"blob {sha256} is corrupted (its content no longer matches its hash); nothing was used from it",
        hint=f"restore {where} from a backup (`mltrain workspace check` lists every bad blob)",
    )


class HashingReader:
    """A binary file read through (``read``), hashing what passes: for a blob streamed elsewhere, whose
    content is then checked with ``check`` before the copy is used."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._hash.update(data)
        return data

    def check(self, sha256: str, where: str | os.PathLike[str]) -> None:
        """Raise :func:`corrupted` unless what was read hashes to ``sha256``."""
        if self._hash.hexdigest() != sha256:
            raise corrupted(sha256, where)


class BlobStore(ABC):
    """Blobs by sha256; every method is safe to call from several processes at once. A blob that exists
    is complete (writes are atomic), and every read that becomes a file, code or a response is checked
    against the blob's name."""

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the blobs are (a folder or a URI without credentials), for messages."""

    @abstractmethod
    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store a binary stream (read in chunks, never whole); return (sha256, size)."""

    def put_file(self, src: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file; return (sha256, size)."""
        with open(src, "rb") as f:
            return self.put_stream(f)

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; return their sha256."""
        return self.put_stream(io.BytesIO(data))[0]

    @abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether blob ``sha256`` is stored (a name that is not a sha256 is refused)."""

    @abstractmethod
    def read_bytes(self, sha256: str) -> bytes:
        """The content of blob ``sha256``, checked against its name (for small blobs: manifests)."""

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """Blob ``sha256`` opened for reading (seekable), its content checked against its name first."""

    @abstractmethod
    def copy_to(self, sha256: str, dest: str | os.PathLike[str]) -> None:
        """Write the blob to ``dest`` (a new, writable file), its content checked against its name; a bad
        or missing blob leaves no file behind."""

    @abstractmethod
    def local_file(self, sha256: str) -> Path:
        """A file on this machine holding blob ``sha256`` (the store's own, or a cached copy checked when it
        was fetched), for code that hands a path on (an SFTP upload, a model loader): who uses its content
        checks it against the name, as :meth:`open` does."""

    @abstractmethod
    def verify(self, sha256: str) -> bool:
        """Whether the stored content of blob ``sha256`` (re-read where it is kept, not from a cache) still
        hashes to its name: ``mltrain workspace check``."""

    @abstractmethod
    def names(self) -> Iterator[str]:
        """The names of the stored blobs (files being written left out)."""

    def signed_url(self, sha256: str, expires_s: int) -> str | None:
        """A URL that reads blob ``sha256`` for ``expires_s`` seconds without credentials (an object store's
        presigned GET), for a node that fetches it itself and checks it against the name; None when the
        store has none. A short-lived bearer capability: hand it only to that node, never record it."""
        return None

    signs_puts = False  # whether :meth:`signed_put` gives URLs (nodes may then upload blobs themselves)

    def signed_put(self, sha256: str, expires_s: int) -> tuple[str, str, dict[str, str]] | None:
        """(staged name, URL, headers) with which a node uploads a file it says is blob ``sha256`` for
        ``expires_s`` seconds without credentials (an object store's presigned PUT, to a staging name,
        never to the blob's); None when the store has none. A bearer capability, like :meth:`signed_url`.
        The upload becomes the blob only through :meth:`adopt`."""
        return None

    def signed_post(self, label: str, expires_s: int, max_bytes: int) -> tuple[str, str, dict[str, str], str] | None:
        """(staged prefix, URL, form fields, form key prefix) with which a node uploads files of at most
        ``max_bytes`` each, whose hashes nobody knows yet, for ``expires_s`` seconds without credentials
        (an object store's presigned POST policy, limited to a fresh staging prefix under ``label``): the
        node posts file N with form key ``<key prefix>N``, which is staged name ``<staged prefix>N``
        for :meth:`adopt`. None when the store has none. A bearer capability, like :meth:`signed_url`."""
        return None

    def adopt(self, staged: str, sha256: str) -> bool:
        """Make the upload ``staged`` (of :meth:`signed_put`) blob ``sha256`` if the store computes that
        hash for it (its bytes never read here); False, and the upload dropped, when it does not."""
        return False

    def owns_staging(self, label: str, prefix: str) -> bool:
        """Whether ``prefix`` is a staging prefix :meth:`signed_post` makes for ``label`` (from a stored job
        reference: untrusted, so anything else, e.g. another label's or one with ``..``, is not)."""
        return False

    def discard_staging(self, prefix: str) -> int:
        """Remove every upload left under the staging prefix ``prefix`` of :meth:`signed_post` (posted and
        never adopted); how many. ValueError when ``prefix`` is not a staging prefix."""
        return 0

    def check(self) -> None:
        """Raise a ConfigError naming the problem and the fix when the store cannot be used (an object store
        that cannot be reached, refuses the credentials, or has no such bucket); a folder always can."""

    def missing(self, sha256: str) -> WorkspaceError:
        return WorkspaceError(
            f"blob {sha256} is missing from the artifact root {self.url}",
            hint="the artifact root was moved or pruned; point workspace.artifact_root at the right place",
        )


class FolderBlobStore(BlobStore):
    """Blobs under the folder ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._dir = self.root / "blobs" / "sha256"

    @property
    def url(self) -> str:
        return str(self.root)

    def path(self, sha256: str) -> Path:
        """Where the blob ``sha256`` lives (it may not exist); a name that is not a sha256 is refused."""
        check_sha256(sha256)
        return self._dir / sha256[:2] / sha256[2:]

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Hashed and copied in one pass, aside, then renamed to its name."""
        self._dir.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: stream.read(CHUNK), b""):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha = h.hexdigest()
            dest = self.path(sha)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            try:  # also over a blob that exists: a changed copy is mended, for the cost of a rename
                os.replace(tmp, dest)
            except PermissionError:
                if not dest.is_file():
                    raise
                os.unlink(tmp)  # another user's blob in a shared root: kept (it is checked wherever it is read)
            return sha, size
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def local_file(self, sha256: str) -> Path:
        path = self.path(sha256)
        if not path.is_file():
            raise self.missing(sha256)
        return path

    def verify(self, sha256: str) -> bool:
        return sha256_file(self.local_file(sha256)) == sha256

    def names(self) -> Iterator[str]:
        if not self._dir.is_dir():
            return
        for sub in sorted(self._dir.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for blob in sorted(sub.iterdir()):
                    if is_sha256(sub.name + blob.name) and blob.is_file():
                        yield sub.name + blob.name

    def read_bytes(self, sha256: str) -> bytes:
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self.missing(sha256) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise corrupted(sha256, path)
        return data

    def open(self, sha256: str) -> BinaryIO:
        """The blob's file, checked first (a file seen unchanged since it was checked in this process, same
        inode, size, mtime and ctime, is not hashed again): for reads that serve a blob whole or in parts
        (the dashboard, ``runs logs``)."""
        path = self.path(sha256)
        try:
            f = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except FileNotFoundError:
            raise self.missing(sha256) from None
        try:
            st = os.fstat(f.fileno())
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if _VERIFIED.get(key) != sha256:
                h = hashlib.sha256()
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    h.update(chunk)
                if h.hexdigest() != sha256:
                    raise corrupted(sha256, path)
                if len(_VERIFIED) >= _VERIFIED_MAX:
                    _VERIFIED.clear()
                _VERIFIED[key] = sha256
                f.seek(0)
            return f
        except BaseException:
            f.close()
            raise

    def copy_to(self, sha256: str, dest: str | os.PathLike[str]) -> None:
        """Checked as it is copied (hashing what is copied costs no extra read): the content goes to a
        temporary file beside ``dest`` first and is renamed into place only when complete and its hash
        matches, so a bad blob never leaves a file behind.
        """
        src = self.path(sha256)
        if not src.is_file():
            raise self.missing(sha256)
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:40]}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                reader = HashingReader(f)
                for chunk in iter(lambda: reader.read(CHUNK), b""):
                    out.write(chunk)
            reader.check(sha256, src)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
