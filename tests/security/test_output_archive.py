"""A job's outputs archive (from an SSH host or a Ray node) is untrusted: unpacked as a stream, bounded by
compute.max_output_mb, only regular files under outputs/ and logs/, never outside the run folder; a refused
archive leaves nothing behind. Real crafted tar.gz files (a 305 KB archive once unpacked to 300 MB)."""

from __future__ import annotations

import io
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from mltrain.compute.archive import extract_outputs
from mltrain.errors import ComputeError

BIG = 64 * 1024 * 1024


class Zeros(io.RawIOBase):
    """``size`` zero bytes, read in pieces (so making the archive holds no big buffer either)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray) -> int:  # type: ignore[override]
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def _archive(path: Path, members: list[tarfile.TarInfo], sizes: dict[str, int] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            size = (sizes or {}).get(info.name, 0)
            info.size = size if info.isfile() else 0
            tar.addfile(info, io.BufferedReader(Zeros(size)) if info.isfile() else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def test_a_highly_compressed_member_is_streamed_with_bounded_memory(tmp_path):
    archive = _archive(tmp_path / "out.tar.gz", [_file("outputs/big.bin")], {"outputs/big.bin": BIG})
    assert archive.stat().st_size < 1024 * 1024
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tracemalloc.start()
    try:
        written = extract_outputs(archive.read_bytes(), run_dir, max_output_mb=1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written == ["outputs/big.bin"] and (run_dir / "outputs" / "big.bin").stat().st_size == BIG
    assert peak < 16 * 1024 * 1024, f"unpacking took {peak / 1e6:.0f} MB of memory"


def test_an_archive_over_max_output_mb_is_refused_and_leaves_nothing(tmp_path):
    sizes = {"outputs/small.txt": 1000, "outputs/big.bin": BIG}
    archive = _archive(tmp_path / "out.tar.gz", [_file("outputs/small.txt"), _file("outputs/big.bin")], sizes)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(ComputeError, match=r"more than compute.max_output_mb=16 MB") as info:
        extract_outputs(archive, run_dir, max_output_mb=16)
    assert "raise compute.max_output_mb" in str(info.value)
    assert [p for p in run_dir.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("name", ["../escaped.txt", "/tmp/abs-escaped.txt", "outputs/../../escaped.txt", "src.py"])
def test_an_entry_outside_outputs_and_logs_is_refused(tmp_path, name):
    archive = _archive(tmp_path / "out.tar.gz", [_file("outputs/ok.txt"), _file(name)], {"outputs/ok.txt": 3})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(ComputeError, match="outside"):
        extract_outputs(archive, run_dir, max_output_mb=1)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/abs-escaped.txt").exists()
    assert not (run_dir / "outputs" / "ok.txt").exists()  # nothing of a refused archive is kept


def test_links_are_never_written_and_the_driver_log_is_kept(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "std_log.txt").write_text("the driver's log\n")
    members = [_link("outputs/shadow", "/etc/shadow"), _file("outputs/real.txt"), _file("logs/std_log.txt")]
    archive = _archive(tmp_path / "out.tar.gz", members, {"outputs/real.txt": 4, "logs/std_log.txt": 2})
    assert extract_outputs(archive, run_dir, max_output_mb=1) == ["outputs/real.txt", "logs/std_log.txt.node"]
    assert not (run_dir / "outputs" / "shadow").exists() and not (run_dir / "outputs" / "shadow").is_symlink()
    assert (run_dir / "logs" / "std_log.txt").read_text() == "the driver's log\n"
