"""The workspace's blobs in object storage: an artifact root such as ``s3://bucket/prefix``.

Blobs keep the folder layout (``PREFIX/blobs/sha256/ab/cdef...``), so the workspace datastore of data
assets is the same place. Writes go through a local content-addressed cache (``cache`` under the
workspace root): the stream is hashed while copied there, then uploaded under its name unless the
store has it, and an upload only becomes visible when complete (one committed PUT). Reads fetch a blob
once into the cache, checked against its name as it arrives (a bad or cut download leaves nothing),
so a second read moves 0 bytes. The store is reached with the credentials of the environment (the
SDK's own variables: ``AWS_*``, ``AZURE_STORAGE_*``, ``GOOGLE_APPLICATION_CREDENTIALS``), never
written anywhere.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mltrain.errors import ConfigError, DataError
from mltrain.workspace.blobs import BlobStore, FolderBlobStore, check_sha256, corrupted, is_sha256
from mltrain.workspace.datastores.base import ContentMismatch, blob_key, drain
from mltrain.workspace.datastores.folder import write_whole

if TYPE_CHECKING:
    from mltrain.workspace.datastores.objects import ObjectDatastore

BLOB_PREFIX = "blobs/sha256"
STAGING_PREFIX = "incoming"  # uploads of nodes, until the store checked their hash
ENVIRONMENT_HINT = (  # where the credentials of an artifact root on object storage come from
    "S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL (MinIO, Ceph) or "
    "AWS_PROFILE; Azure: AZURE_STORAGE_ACCOUNT_NAME with a key, SAS token or connection string; GCS: "
    "GOOGLE_APPLICATION_CREDENTIALS"
)


class ObjectBlobStore(BlobStore):
    """Blobs in an object store, read and written through the local cache folder ``cache``."""

    def __init__(self, store: ObjectDatastore, cache: str | os.PathLike[str]) -> None:
        self.store = store
        self.cache = FolderBlobStore(cache)
        self._checked = False

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def signs_puts(self) -> bool:  # type: ignore[override]
        return self.store.signs_puts

    def check(self) -> None:
        """One request to the bucket (once per store): unreachable, refused or missing is a ConfigError."""
        if self._checked:
            return
        try:
            self.store.check_bucket()
        except DataError as exc:
            raise ConfigError(
                f"the artifact root {self.url} cannot be used: {exc.message}",
                hint=f"{exc.hint or 'check the URL'}; the store is reached with the environment's credentials "
                f"({ENVIRONMENT_HINT}); or point MLTRAIN_ARTIFACT_ROOT / workspace.artifact_root elsewhere",
            ) from None
        self._checked = True

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Hashed while cached, then uploaded under its name unless the store holds it already."""
        self.check()
        sha, size = self.cache.put_stream(stream)
        key = blob_key(sha)
        if not self.store.exists(key):
            with open(self.cache.path(sha), "rb") as f:
                self.store.write(key, f, sha256=sha)
        return sha, size

    def exists(self, sha256: str) -> bool:
        self.check()
        return self.store.exists(blob_key(check_sha256(sha256)))

    def local_file(self, sha256: str) -> Path:
        """The cached copy, fetched first when the cache lacks it (checked as it arrives)."""
        path = self.cache.path(sha256)
        if path.is_file():
            return path
        self.check()
        key = blob_key(sha256)
        try:
            with self.store.open(key) as f:
                write_whole(path, f, self.url, sha256=sha256)
        except ContentMismatch:
            raise corrupted(sha256, f"{self.url}/{key}") from None
        except DataError:
            if not self.store.exists(key):
                raise self.missing(sha256) from None
            raise
        return path

    def signed_url(self, sha256: str, expires_s: int) -> str | None:
        self.check()
        return self.store.signed_url(blob_key(check_sha256(sha256)), expires_s)

    def signed_put(self, sha256: str, expires_s: int) -> tuple[str, str, dict[str, str]] | None:
        self.check()
        staged = f"{STAGING_PREFIX}/{uuid.uuid4().hex}"
        signed = self.store.signed_put(staged, expires_s, check_sha256(sha256))
        return None if signed is None else (staged, *signed)

    def signed_post(self, label: str, expires_s: int, max_bytes: int) -> tuple[str, str, dict[str, str], str] | None:
        self.check()
        if not label or not all(c.isalnum() or c in "-_" for c in label):
            raise ValueError(f"bad staging label {label[:80]!r}")
        staged = f"{STAGING_PREFIX}/{label}/{uuid.uuid4().hex}/"
        signed = self.store.signed_post(staged, expires_s, max_bytes)
        return None if signed is None else (staged, *signed)

    def owns_staging(self, label: str, prefix: str) -> bool:
        return isinstance(prefix, str) and re.fullmatch(_staging(re.escape(label)), prefix) is not None

    def discard_staging(self, prefix: str) -> int:
        if re.fullmatch(_staging(r"[\w-]+"), prefix) is None:
            raise ValueError(f"bad staging prefix {prefix[:80]!r}")
        self.check()
        left = self.store.list(prefix)
        for stored in left:
            self.store.remove(stored.key)
        return len(left)

    def adopt(self, staged: str, sha256: str) -> bool:
        """Checked by the store (a server-side copy computing SHA-256), then renamed: a node that lied about
        the hash leaves nothing under any blob name."""
        return self.store.adopt(staged, blob_key(check_sha256(sha256)), sha256)

    def read_bytes(self, sha256: str) -> bytes:
        self.local_file(sha256)
        return self.cache.read_bytes(sha256)

    def open(self, sha256: str) -> BinaryIO:
        self.local_file(sha256)
        return self.cache.open(sha256)

    def copy_to(self, sha256: str, dest: str | os.PathLike[str]) -> None:
        self.local_file(sha256)
        self.cache.copy_to(sha256, dest)

    def verify(self, sha256: str) -> bool:
        self.check()
        key = blob_key(check_sha256(sha256))
        if not self.store.exists(key):
            raise self.missing(sha256)
        with self.store.open(key) as f:
            return drain(f)[0] == sha256

    def names(self) -> Iterator[str]:
        self.check()
        for stored in self.store.list(BLOB_PREFIX):
            parts = stored.key.split("/")
            if len(parts) == 4 and len(parts[2]) == 2 and is_sha256(parts[2] + parts[3]):
                yield parts[2] + parts[3]  # anything else under the prefix is not a blob


def _staging(label: str) -> str:
    """The pattern of the staging prefixes :meth:`ObjectBlobStore.signed_post` makes for labels ``label``."""
    return rf"{STAGING_PREFIX}/{label}/[0-9a-f]{{32}}/"
