"""Datastores on a file system: a local or shared folder, and the workspace's own blob store.

Writes go to a temporary ``.incoming-*`` file beside the target and are renamed into place when
complete, so a file at a key is always whole; listings leave the temporary files out. Keys resolve
inside the folder only, and a symlink out of it is never followed.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from mltrain.errors import ConfigError, DataError
from mltrain.workspace.blobs import CHUNK, FolderBlobStore
from mltrain.workspace.datastores.base import (
    Counter,
    Datastore,
    HashingReader,
    Opener,
    StoredFile,
    check_key,
    mismatch,
)
from mltrain.workspace.paths import UnsafePathError, safe_join, walk_files

TMP_PREFIX = ".incoming-"  # the blob store's own prefix for files being written


def cannot_write(target: Path, exc: OSError) -> DataError:
    return DataError(
        f"cannot write {target}: {exc.strerror or exc}", hint="check the free space and the permissions there"
    )


def write_whole(
    target: Path,
    stream: BinaryIO,
    where: str,
    sha256: str | None = None,
    size: int | None = None,
    counter: Counter | None = None,
    prefix: str = TMP_PREFIX,
) -> int:
    """Copy ``stream`` to a temporary file beside ``target`` and rename it into place once whole and,
    when given, of ``size`` bytes and content ``sha256`` (else ContentMismatch naming ``where``); on any
    failure nothing is left behind (the source's own errors pass as they are). Returns the size written."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".part")
    except OSError as exc:
        raise cannot_write(target, exc) from None
    try:
        reader = HashingReader(stream, counter, hashing=sha256 is not None)
        with os.fdopen(fd, "wb") as out:
            while chunk := reader.read(CHUNK):
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise cannot_write(target, exc) from None
            try:
                out.flush()
            except OSError as exc:
                raise cannot_write(target, exc) from None
        if size is not None and reader.size != size:
            raise mismatch(target.name, where, f"{size} bytes", f"{reader.size} bytes")
        if sha256 is not None and reader.hexdigest() != sha256:
            raise mismatch(target.name, where, f"sha256 {sha256}", f"sha256 {reader.hexdigest()}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return reader.size


class FolderDatastore(Datastore):
    """Files under a local or shared (NFS, SMB) folder; stored data goes to ``blobs/sha256/`` in it."""

    kind = "folder"

    def __init__(self, path: str) -> None:
        if not path or not str(path).strip():
            raise ConfigError("datastore.path is empty", hint="set it to a folder, e.g. datastore.path=/mnt/data")
        self.root = Path(os.path.expanduser(str(path).removeprefix("file://"))).absolute()
        self._real_root: Path | None = None  # resolved on first use (the folder may not exist yet)

    @property
    def url(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        try:
            if self._real_root is None:
                self._real_root = self.root.resolve()
            return safe_join(self._real_root, check_key(key, self.url), dest_is_real=True)
        except UnsafePathError as exc:
            raise DataError(f"refusing {key!r} in {self.url}: {exc.message}", hint=exc.hint) from None

    def _missing(self, key: str) -> DataError:
        return DataError(f"{key} does not exist in {self.url}", hint="check the path, or whether it was removed")

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            if not path.is_file():
                raise FileNotFoundError(path)
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise self._missing(key) from None
        except OSError as exc:
            raise DataError(f"cannot read {key} in {self.url}: {exc.strerror or exc}") from None

    def info(self, key: str) -> StoredFile:
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        return StoredFile(key, path.stat().st_size)

    def list(self, prefix: str = "") -> list[StoredFile]:
        if not self.root.is_dir():
            raise DataError(f"the folder {self.url} does not exist", hint="create it, or fix the path")
        base = self._path(prefix) if prefix else self.root
        outside: list[str] = []
        files = [
            StoredFile(f"{prefix.rstrip('/')}/{rel}" if prefix else rel, full.stat().st_size)
            for rel, full in walk_files(base, outside.append, root=self.root)
            if not full.name.startswith(TMP_PREFIX)
        ]
        if outside:
            raise DataError(
                f"{self.url} holds symlinks that lead out of it: " + "; ".join(outside[:5]),
                hint="replace each link by the file it points to, or remove it",
            )
        return sorted(files, key=lambda f: f.key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def write(self, key: str, stream: BinaryIO, sha256: str | None = None) -> StoredFile:
        self._writable()
        return StoredFile(key, write_whole(self._path(key), stream, self.url, sha256))

    def put_blob(self, opener: Opener, counter: Counter | None = None) -> tuple[str, int]:
        """One pass: hashed while copied aside, renamed to its blob (or dropped when it exists)."""
        self._writable()
        with opener() as f:
            return FolderBlobStore(self.root).put_stream(HashingReader(f, counter, hashing=False))  # type: ignore[arg-type]

    def at(self, url: str) -> Datastore:
        return FolderDatastore(url)


class WorkspaceDatastore(FolderDatastore):
    """The workspace's own content-addressed blob store (its artifact root): the default datastore."""

    kind = "workspace"

    def __init__(self, root: str | None = None) -> None:
        if root is None:
            raise ConfigError(
                "the workspace datastore was made without the workspace's artifact root",
                hint="open it with mltrain.workspace.datastores.open_datastore(node, ws.settings.artifact_root)",
            )
        super().__init__(root)

    def list(self, prefix: str = "") -> list[StoredFile]:
        return super().list(prefix) if self.root.is_dir() else []  # a new workspace has no artifact root yet
