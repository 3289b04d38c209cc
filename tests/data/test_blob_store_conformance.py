"""Both blob stores of a workspace pass one conformance suite: the folder store (the default artifact
root) and the object store (an artifact root ``s3://bucket/prefix`` on a real S3-compatible server,
moto's, on loopback). A store keeps content by its sha256, writes atomically, checks what it reads
against the name (a blob in a shared root may be hostile) and refuses names that are not a sha256.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from datastore_suite import FailingStream

from mltrain.errors import ConfigError, WorkspaceError
from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.blobs import BlobStore, FolderBlobStore
from mltrain.workspace.object_blobs import ObjectBlobStore

BAD_NAMES = ["../../etc/passwd", "ab", "A" * 64, "0" * 63 + "/", "g" * 64]
Tamper = Callable[[str, bytes], None]  # (name, content): hostile content stored under a blob's name


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStoreSuite:
    """A subclass gives ``blobs`` (a new, empty store), ``tamper`` (writes content under a name behind
    the store's back) and ``leftovers`` (every file or object where the store keeps things)."""

    @pytest.fixture
    def blobs(self) -> BlobStore:
        raise NotImplementedError

    @pytest.fixture
    def tamper(self) -> Tamper:
        raise NotImplementedError

    @pytest.fixture
    def leftovers(self) -> Callable[[], list[str]]:
        raise NotImplementedError

    def test_content_is_stored_once_by_its_sha256_and_read_back(self, blobs: BlobStore, tmp_path: Path):
        assert blobs.put_bytes(b"hello") == sha(b"hello")
        src = tmp_path / "src.txt"
        src.write_bytes(b"hello")
        assert blobs.put_file(src) == (sha(b"hello"), 5)
        assert blobs.put_stream(io.BytesIO(b"other")) == (sha(b"other"), 5)
        assert sorted(blobs.names()) == sorted([sha(b"hello"), sha(b"other")])
        assert blobs.exists(sha(b"hello")) and not blobs.exists(sha(b"never"))
        assert blobs.read_bytes(sha(b"hello")) == b"hello"
        with blobs.open(sha(b"other")) as f:
            assert f.read() == b"other"
            f.seek(2)
            assert f.read() == b"her"
        blobs.copy_to(sha(b"hello"), tmp_path / "out" / "copy.txt")
        assert (tmp_path / "out" / "copy.txt").read_bytes() == b"hello"
        assert blobs.local_file(sha(b"hello")).read_bytes() == b"hello"

    def test_large_content_round_trips(self, blobs: BlobStore, tmp_path: Path):
        data = os.urandom(1 << 20) * 12  # 12 MiB: several chunks, a multipart upload on S3
        assert blobs.put_stream(io.BytesIO(data)) == (sha(data), len(data))
        blobs.copy_to(sha(data), tmp_path / "large.bin")
        assert sha((tmp_path / "large.bin").read_bytes()) == sha(data)

    def test_an_interrupted_write_leaves_no_blob(self, blobs: BlobStore, leftovers: Callable[[], list[str]]):
        with pytest.raises(OSError, match="broke off"):
            blobs.put_stream(FailingStream(3 << 20))  # type: ignore[arg-type]
        assert list(blobs.names()) == []
        assert leftovers() == []

    @pytest.mark.parametrize("name", BAD_NAMES)
    def test_a_name_that_is_not_a_sha256_is_refused(self, blobs: BlobStore, name: str, tmp_path: Path):
        copy = lambda n: blobs.copy_to(n, tmp_path / "x")  # noqa: E731
        for call in (blobs.exists, blobs.read_bytes, blobs.open, blobs.local_file, copy):
            with pytest.raises(WorkspaceError, match="64 hex"):
                call(name)
        assert not (tmp_path / "x").exists()

    def test_a_missing_blob_is_a_clear_error_and_leaves_no_file(self, blobs: BlobStore, tmp_path: Path):
        name = sha(b"never stored")
        for call in (blobs.read_bytes, blobs.open, blobs.local_file, lambda n: blobs.copy_to(n, tmp_path / "x")):
            with pytest.raises(WorkspaceError, match="missing"):
                call(name)
        assert list(tmp_path.iterdir()) == []

    def test_hostile_content_under_a_blob_name_is_never_used(self, blobs: BlobStore, tamper: Tamper, tmp_path: Path):
        name = sha(b"the real content")
        tamper(name, b"hostile content")
        for call in (blobs.read_bytes, blobs.open, lambda n: blobs.copy_to(n, tmp_path / "x")):
            with pytest.raises(WorkspaceError, match="corrupted"):
                call(name)
        assert not (tmp_path / "x").exists()

    def test_verify_re_reads_the_stored_content(self, blobs: BlobStore, tamper: Tamper):
        name = blobs.put_bytes(b"the content")
        blobs.read_bytes(name)  # an object store's cache holds a good copy now
        assert blobs.verify(name)
        tamper(name, b"changed where it is stored")
        assert not blobs.verify(name)
        with pytest.raises(WorkspaceError, match="missing"):
            blobs.verify(sha(b"never stored"))

    def test_a_forked_child_uses_the_store_too(self, blobs: BlobStore):
        name = blobs.put_bytes(b"stored before the fork")  # the parent is connected
        pid = os.fork()
        if pid == 0:  # a trial process of a sweep, forked by its launcher
            try:
                ok = blobs.read_bytes(name) == b"stored before the fork" and blobs.put_bytes(b"child") == sha(b"child")
                os._exit(0 if ok else 1)
            except BaseException:
                os._exit(2)
        code = None
        for _ in range(600):  # a bounded wait (a child stuck on the parent's connection is killed below)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        assert code == 0
        assert blobs.read_bytes(sha(b"child")) == b"child"


class TestFolderBlobStore(BlobStoreSuite):
    @pytest.fixture
    def blobs(self, tmp_path: Path) -> BlobStore:
        return FolderBlobStore(tmp_path / "artifacts")

    @pytest.fixture
    def tamper(self, blobs: FolderBlobStore) -> Tamper:
        def write(name: str, data: bytes) -> None:
            blobs.path(name).parent.mkdir(parents=True, exist_ok=True)
            blobs.path(name).write_bytes(data)

        return write

    @pytest.fixture
    def leftovers(self, blobs: FolderBlobStore) -> Callable[[], list[str]]:
        return lambda: sorted(str(p) for p in blobs.root.rglob("*") if p.is_file())


class TestObjectBlobStore(BlobStoreSuite):
    @pytest.fixture
    def prefix(self) -> str:
        return f"art-{secrets.token_hex(3)}"

    @pytest.fixture
    def blobs(self, s3, prefix: str, tmp_path: Path) -> BlobStore:
        return WorkspaceSettings.resolve(str(tmp_path / "ws"), None, s3.url(prefix)).blob_store()

    @pytest.fixture
    def tamper(self, s3, prefix: str) -> Tamper:
        return lambda name, data: s3.put(f"{prefix}/blobs/sha256/{name[:2]}/{name[2:]}", data)

    @pytest.fixture
    def leftovers(self, s3, prefix: str, tmp_path: Path) -> Callable[[], list[str]]:
        cache = tmp_path / "ws" / "blob-cache"

        def found() -> list[str]:
            objects = [k for k in s3.keys() if k.startswith(prefix)]  # noqa: SIM118 - the bucket's keys
            return objects + sorted(str(p) for p in cache.rglob("*") if p.is_file())

        return found

    def test_blobs_live_in_the_bucket_and_a_second_read_comes_from_the_cache(self, s3, prefix: str, tmp_path: Path):
        settings = WorkspaceSettings.resolve(str(tmp_path / "a"), None, s3.url(prefix))
        name = settings.blob_store().put_bytes(b"shared by a team")
        assert s3.keys() == [f"{prefix}/blobs/sha256/{name[:2]}/{name[2:]}"]
        other = WorkspaceSettings.resolve(str(tmp_path / "b"), None, s3.url(prefix)).blob_store()
        other.copy_to(name, tmp_path / "first.txt")  # another machine: fetched once into its cache
        s3.delete(f"{prefix}/blobs/sha256/{name[:2]}/{name[2:]}")
        other.copy_to(name, tmp_path / "second.txt")  # the bucket is not asked again
        assert (tmp_path / "second.txt").read_bytes() == b"shared by a team"
        assert (tmp_path / "b" / "blob-cache").is_dir() and not (tmp_path / "b" / "artifacts").exists()

    def test_a_damaged_cached_copy_is_refused(self, blobs: ObjectBlobStore, tmp_path: Path):
        name = blobs.put_bytes(b"cached")
        cached = blobs.local_file(name)
        os.chmod(cached, 0o644)
        cached.write_bytes(b"damage")
        with pytest.raises(WorkspaceError, match="corrupted"):
            blobs.copy_to(name, tmp_path / "x")


@pytest.mark.parametrize(
    ("root", "problem"),
    [
        ("ftp://host/arts", "scheme ftp://"),
        ("s3://", "names no bucket"),
        ("s3://user:pw@bucket/arts", "user name or password"),
    ],
)
def test_a_bad_artifact_root_uri_is_a_config_error_before_anything_is_made(tmp_path: Path, root: str, problem: str):
    with pytest.raises(ConfigError, match=problem) as info:
        Workspace.open(str(tmp_path / "ws"), artifact_root=root)
    assert "pw" not in str(info.value)
    assert not (tmp_path / "ws").exists()


def test_a_store_that_cannot_be_used_is_a_config_error_naming_the_fix(s3, monkeypatch, tmp_path: Path):
    def problem(root: str) -> str:
        with pytest.raises(ConfigError) as info:
            WorkspaceSettings.resolve(str(tmp_path), None, root).blob_store().put_bytes(b"x")
        return str(info.value)

    assert "does not exist" in problem("s3://no-such-bucket-here/arts")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    told = problem(s3.url("arts"))
    assert "refused access" in told and "AWS_SECRET_ACCESS_KEY" in told and "wrong-secret" not in told
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert "cannot reach" in problem(s3.url("arts"))
    assert s3.keys() == []
