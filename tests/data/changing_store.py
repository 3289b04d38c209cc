"""Datastore plugins for tests (a user's own ``_target_`` class works the same way): stores whose
source file is changed by "another writer" while it is being stored."""

from __future__ import annotations

from typing import BinaryIO

from mltrain.workspace.datastores.base import Counter, Datastore, Opener
from mltrain.workspace.datastores.folder import FolderDatastore


class _Appending:
    """Reads a file; after the first chunk, something else appends to it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._done = False

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if not self._done:
            self._done = True
            with open(self._stream.name, "ab") as other_writer:
                other_writer.write(b"appended meanwhile")
        return data

    def __enter__(self) -> _Appending:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()


class OnePassChanging(FolderDatastore):
    """The folder store's one-pass blob write, with the source growing while it is read."""

    def put_blob(self, opener: Opener, counter: Counter | None = None) -> tuple[str, int]:
        return super().put_blob(lambda: _Appending(opener()), counter)  # type: ignore[arg-type,return-value]


class TwoPassChanging(FolderDatastore):
    """The generic two-pass blob write (hash, then upload) of object stores, with the source
    changing between the passes."""

    def put_blob(self, opener: Opener, counter: Counter | None = None) -> tuple[str, int]:
        return Datastore.put_blob(self, lambda: _Appending(opener()), counter)  # type: ignore[arg-type]
