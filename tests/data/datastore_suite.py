"""The conformance suite of datastores (as ``tests/conformance.py`` is for compute targets).

It drives a store through its contract against the real thing behind it: write (atomic, verified),
open and read, info, list with sizes and checksums, exists, content-addressed blobs stored once,
a store rooted elsewhere (``at``), and every hostile key refused. A subclass
(``class TestMyStore(DatastoreSuite)``) provides one fixture, ``store``: a new, empty, writable store.
"""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from mltrain.errors import DataError
from mltrain.workspace.datastores.base import ContentMismatch, Datastore, blob_key

HOSTILE_KEYS = ["../escape.txt", "/etc/passwd", "a/../../b.txt", "", "a//b", "C:\\x.txt", "a/\x00b"]


class FailingStream(io.RawIOBase):
    """Gives ``good`` bytes, then fails as a broken connection or disk would."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("the source broke off")
        chunk = b"x" * (min(n, self.left) if n and n > 0 else self.left)
        self.left -= len(chunk)
        return chunk


def read_all(store: Datastore, key: str) -> bytes:
    with store.open(key) as f:
        return f.read()


class DatastoreSuite:
    @pytest.fixture
    def store(self) -> Datastore:
        raise NotImplementedError("a subclass provides a new, empty, writable store")

    def test_write_then_read_info_exists(self, store: Datastore):
        stored = store.write("a/b/c.txt", io.BytesIO(b"hello"))
        assert (stored.key, stored.size) == ("a/b/c.txt", 5)
        assert read_all(store, "a/b/c.txt") == b"hello"
        info = store.info("a/b/c.txt")
        assert (info.key, info.size) == ("a/b/c.txt", 5)
        assert store.exists("a/b/c.txt") and not store.exists("a/b/none.txt") and not store.exists("a/b")

    def test_list_gives_relative_keys_sizes_and_the_checksums_info_gives(self, store: Datastore):
        for key, data in {"x/1.csv": b"1", "x/deep/2.csv": b"22", "y.txt": b"333"}.items():
            store.write(key, io.BytesIO(data))
        listed = store.list()
        assert [(f.key, f.size) for f in listed] == [("x/1.csv", 1), ("x/deep/2.csv", 2), ("y.txt", 3)]
        assert [(f.key, f.size) for f in store.list("x")] == [("x/1.csv", 1), ("x/deep/2.csv", 2)]
        assert store.list("nothing/here") == []
        for f in listed:
            assert store.info(f.key).checksum == f.checksum

    def test_a_failed_write_leaves_nothing(self, store: Datastore):
        with pytest.raises(OSError, match="broke off"):
            store.write("big.bin", FailingStream(3 << 20))  # type: ignore[arg-type]
        assert not store.exists("big.bin")
        assert store.list() == []

    def test_a_write_with_another_hash_than_promised_leaves_nothing(self, store: Datastore):
        with pytest.raises(ContentMismatch):
            store.write("f.txt", io.BytesIO(b"actual"), sha256=hashlib.sha256(b"promised").hexdigest())
        assert not store.exists("f.txt") and store.list() == []
        good = hashlib.sha256(b"actual").hexdigest()
        assert store.write("f.txt", io.BytesIO(b"actual"), sha256=good).size == 6

    def test_overwrite_replaces_the_whole_file(self, store: Datastore):
        store.write("f.txt", io.BytesIO(b"first version, longer"))
        store.write("f.txt", io.BytesIO(b"second"))
        assert read_all(store, "f.txt") == b"second" and store.info("f.txt").size == 6

    def test_large_content_streams_in_chunks(self, store: Datastore):
        data = os.urandom(1 << 20) * 12  # 12 MiB: several chunks, a multipart upload on S3
        store.write("large.bin", io.BytesIO(data))
        h = hashlib.sha256()
        with store.open("large.bin") as f:
            while chunk := f.read(1 << 20):
                assert len(chunk) <= 1 << 20
                h.update(chunk)
        assert h.hexdigest() == hashlib.sha256(data).hexdigest()
        assert store.info("large.bin").size == len(data)

    def test_blobs_are_stored_once_by_their_sha256(self, store: Datastore):
        seen: list[int] = []
        sha, size = store.put_blob(lambda: io.BytesIO(b"same content"), seen.append)
        assert (sha, size) == (hashlib.sha256(b"same content").hexdigest(), 12) and sum(seen) == 12
        assert store.put_blob(lambda: io.BytesIO(b"same content"))[0] == sha
        assert [f.key for f in store.list()] == [blob_key(sha)]
        assert read_all(store, blob_key(sha)) == b"same content"

    def test_a_source_changing_between_hash_and_upload_is_refused(self, store: Datastore):
        contents = iter([b"read first", b"read second", b"read third"])
        try:
            sha, _ = store.put_blob(lambda: io.BytesIO(next(contents)))
        except ContentMismatch:
            assert store.list() == []  # a two-pass store saw the change: nothing kept
        else:  # a one-pass store stored what it read, under that content's own hash
            assert sha == hashlib.sha256(b"read first").hexdigest()
            assert read_all(store, blob_key(sha)) == b"read first"

    def test_missing_files_are_clear_errors(self, store: Datastore):
        for call in (store.open, store.info):
            with pytest.raises(DataError, match="nothing.txt"):
                call("nothing.txt")

    @pytest.mark.parametrize("key", HOSTILE_KEYS)
    def test_hostile_keys_are_refused(self, store: Datastore, key: str):
        with pytest.raises(DataError):
            store.write(key, io.BytesIO(b"x"))
        with pytest.raises(DataError):
            store.open(key)
        with pytest.raises(DataError):
            store.info(key)
        assert store.list() == []

    def test_at_roots_a_store_elsewhere_with_the_same_options(self, store: Datastore):
        store.write("inner/f.txt", io.BytesIO(b"in"))
        inner = store.at(store.url.rstrip("/") + "/inner")
        assert type(inner) is not None and inner.url.rstrip("/").endswith("inner")
        assert [f.key for f in inner.list()] == ["f.txt"]
        assert read_all(inner, "f.txt") == b"in"
