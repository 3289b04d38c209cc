"""The small JSON files of the cache folder that make later commands faster (``preconnect.json``: the
SSH hosts a command line ran on; ``ssh-python.json``: each host's real interpreter): a damaged or
hostile file is read as nothing (never a crash, a hang or a huge read), and the next write replaces it
with a good one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mltrain.compute.ssh import interpreters
from mltrain.runs import preconnect

ARGV = ["+compute=ssh", "job.script=job.py"]
NODE = {"_target_": preconnect.SSH_TARGET, "hosts": [{"host": "gpu1"}]}


def _damage(path: Path, how: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "not json":
        path.write_bytes(b"\xff\xfe{not json")
    elif how == "wrong types":
        path.write_text(json.dumps("a string" if path.name == "preconnect.json" else [1, 2, {"key": 3}]))
    elif how == "deeply nested":
        path.write_text("[" * 200_000 + "]" * 200_000)
    elif how == "huge":  # a valid file, but far larger than anything mltrain writes
        path.write_text(json.dumps({"pad": "x" * (2 << 20)}))
    elif how == "a folder":
        path.mkdir()
    elif how == "a fifo":  # no writer: reading it would wait forever
        os.mkfifo(path)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(preconnect, "_command", None)
    monkeypatch.setattr(preconnect, "_begun", False)
    return tmp_path / "cache"


@pytest.mark.parametrize("how", ["not json", "wrong types", "deeply nested", "huge", "a folder", "a fifo"])
def test_a_damaged_cache_file_reads_as_empty_and_is_replaced(cache: Path, how: str) -> None:
    _damage(cache / "preconnect.json", how)
    assert preconnect.start(ARGV) is False  # nothing remembered: no early connection
    preconnect.remember(NODE)
    if how != "a folder":  # (a folder in its place stays: nothing is stored then, and nothing fails)
        assert json.loads((cache / "preconnect.json").read_text()) == [
            {"key": preconnect.command_key(ARGV), "compute": NODE}
        ]

    _damage(cache / interpreters.FILE, how)
    assert interpreters.remembered("root@gpu1:22", "python3") is None
    interpreters.remember("root@gpu1:22", "python3", "/usr/bin/python3.12")
    if how != "a folder":
        assert interpreters.remembered("root@gpu1:22", "python3") == "/usr/bin/python3.12"
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")]  # no scratch file left
