"""Large data is streamed (the command's peak memory stays far below the data's size), and a create
interrupted at any moment records no version and leaves no partial blob where a reader would see it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIG_MB = 320
RSS_LIMIT_KB = 200 * 1024


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a small file and one of 320 MB (sorted after it)."""
    folder = tmp_path_factory.mktemp("big") / "raw"
    folder.mkdir()
    (folder / "a.txt").write_text("small, stored first")
    block = os.urandom(1 << 20)
    with open(folder / "big.bin", "wb") as f:
        for i in range(BIG_MB):
            f.write(i.to_bytes(8, "little") + block[8:])
    return folder


def peak_rss_kb(cmd: list[str], cwd: Path) -> tuple[int, int]:
    """(exit code, peak RSS in KB) of ``cmd`` run as the only child of a fresh interpreter."""
    probe = (
        "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], cwd=cwd, capture_output=True, text=True, timeout=600)
    code, rss = out.stdout.split()
    return int(code), int(rss)


def test_a_large_file_is_streamed_with_bounded_memory(big_folder: Path, project: Path):
    mltrain = [sys.executable, "-m", "mltrain.cli.main"]
    code, rss = peak_rss_kb([*mltrain, "data", "create", "big", str(big_folder)], project)
    assert code == 0 and rss < RSS_LIMIT_KB, f"peak RSS {rss / 1024:.0f} MB"
    code, rss = peak_rss_kb([*mltrain, "data", "download", "big", "out"], project)
    assert code == 0 and rss < RSS_LIMIT_KB, f"peak RSS {rss / 1024:.0f} MB"
    assert (project / "out" / "big.bin").stat().st_size == BIG_MB << 20


def blob_files(project: Path) -> list[Path]:
    root = project / ".mltrain" / "artifacts" / "blobs" / "sha256"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_create_records_nothing(big_folder: Path, project: Path, mt_json, mt, sig: int):
    proc = subprocess.Popen(
        [sys.executable, "-m", "mltrain.cli.main", "data", "create", "big", str(big_folder)],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    incoming = None
    deadline = time.monotonic() + 120
    while incoming is None and proc.poll() is None and time.monotonic() < deadline:
        writing = [p for p in blob_files(project) if p.name.startswith(".incoming-") and p.stat().st_size > 0]
        incoming = writing[0] if writing else None
        time.sleep(0.005)
    assert incoming is not None, "the create ended before it could be interrupted"
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0

    assert mt_json("data", "list", "--all") == []  # no version recorded
    blobs = [p for p in blob_files(project) if not p.name.startswith(".incoming-")]
    for blob in blobs:  # every blob at its content address is whole
        assert sha256_of(blob) == blob.parent.name + blob.name
    assert len(blobs) <= 1  # at most a.txt's; never a part of big.bin
    leftovers = [p for p in blob_files(project) if p.name.startswith(".incoming-")]
    assert leftovers == [] if sig == signal.SIGINT else len(leftovers) <= 1  # a killed process cannot clean up
    assert mt("workspace", "check").returncode == 0
    again = mt_json("data", "create", "big", str(big_folder))  # and the next create completes
    assert again["version"] == 1 and again["size"] == (BIG_MB << 20) + len("small, stored first")
