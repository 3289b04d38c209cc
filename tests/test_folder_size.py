"""One measure of a folder (an environment's size, a folder a snapshot leaves out): the bytes and
number of its regular files, a hard-linked file once, never what a symlink points to."""

from __future__ import annotations

import os

from mltrain.workspace.paths import folder_size
from mltrain.workspace.snapshots import scan


def test_folder_size_counts_each_file_once_and_follows_no_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"x" * 10_000)
    folder = tmp_path / "venv"
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "a.py").write_bytes(b"a" * 100)
    os.link(folder / "lib" / "a.py", folder / "lib" / "a-again.py")  # uv links files from its cache
    (folder / "bin").mkdir()
    (folder / "bin" / "python").symlink_to(outside / "big.bin")
    (folder / "outside").symlink_to(outside, target_is_directory=True)
    assert folder_size(folder) == (100, 1)


def test_a_folder_left_out_of_a_snapshot_is_reported_with_that_measure(tmp_path):
    source = tmp_path / "src"
    (source / ".venv" / "lib").mkdir(parents=True)
    (source / "train.py").write_text("print('hi')\n")
    (source / ".venv" / "lib" / "m.py").write_bytes(b"m" * 300)
    os.link(source / ".venv" / "lib" / "m.py", source / ".venv" / "lib" / "m2.py")
    (source / ".gitignore").write_text(".venv/\n")
    skipped = {rel: entry for rel, _path, entry in scan(source, report=True) if entry.rule}
    assert (skipped[".venv/"].size, skipped[".venv/"].files) == folder_size(source / ".venv") == (300, 1)
