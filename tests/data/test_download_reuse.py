"""A download input's private copy is laid out once per node: the next run of the same files takes the
copy a script left untouched (no byte copied), and never one a script changed in any way: written with
its times set back, replaced by a file of the same size, a file added or removed, a mode changed (the
node-side code, run here on real files)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mltrain.remote import inputs as node_io


def cached_input(cache: node_io.NodeCache) -> tuple[dict, dict[str, bytes]]:
    content = {"a.csv": b"a,b\n1,2\n" + os.urandom(8).hex().encode(), "sub/b.bin": os.urandom(5000)}
    files = []
    for rel, data in content.items():
        entry = [rel, len(data), hashlib.sha256(data).hexdigest(), None]
        cache.store(entry, io.BytesIO(data))
        files.append(entry)
    return {"name": "d", "mode": "download", "type": "uri_folder", "files": files, "uri": "data:d:1"}, content


def read_all(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def write_keeping_times(d: Path) -> None:
    st = (d / "a.csv").stat()
    (d / "a.csv").write_bytes(b"x" * st.st_size)
    os.utime(d / "a.csv", ns=(st.st_atime_ns, st.st_mtime_ns))


def replace_by_same_size(d: Path) -> None:
    st = (d / "a.csv").stat()
    (d / "new").write_bytes(b"y" * st.st_size)
    os.utime(d / "new", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(d / "new", d / "a.csv")


TAMPERING: dict[str, Callable[[Path], None]] = {
    "written, times set back": write_keeping_times,
    "replaced by a file of the same size": replace_by_same_size,
    "a file added": lambda d: (d / "sub" / "extra.txt").write_text("more"),
    "a file removed": lambda d: (d / "sub" / "b.bin").unlink(),
    "a mode changed": lambda d: os.chmod(d / "a.csv", 0o600),
}


def test_an_untouched_copy_is_taken_by_the_next_run(tmp_path: Path):
    cache = node_io.NodeCache(str(tmp_path / "cache"))
    inp, content = cached_input(cache)
    size = sum(len(v) for v in content.values())
    assert node_io.materialise(cache, inp, str(tmp_path / "run1")) == size  # the first run copies
    node_io.release_run_folder(str(tmp_path / "run1"), cache)
    assert not (tmp_path / "run1").exists()
    assert node_io.materialise(cache, inp, str(tmp_path / "run2")) == 0  # the second takes that copy
    got = tmp_path / "run2" / node_io.INPUTS_DIR / "d"
    assert read_all(got) == content
    (got / "a.csv").write_bytes(b"still a private copy")  # writable, as a download is
    assert node_io.materialise(cache, inp, str(tmp_path / "run3")) == size  # the copy is lent to one run only


@pytest.mark.parametrize("change", list(TAMPERING))
def test_a_copy_the_script_changed_is_never_taken(tmp_path: Path, change: str):
    cache = node_io.NodeCache(str(tmp_path / "cache"))
    inp, content = cached_input(cache)
    node_io.materialise(cache, inp, str(tmp_path / "run1"))
    TAMPERING[change](tmp_path / "run1" / node_io.INPUTS_DIR / "d")
    node_io.release_run_folder(str(tmp_path / "run1"), cache)
    assert node_io.materialise(cache, inp, str(tmp_path / "run2")) > 0  # a fresh copy
    assert read_all(tmp_path / "run2" / node_io.INPUTS_DIR / "d") == content
