"""Laying an input out in a run folder (the node-side code every target uses): a run folder whose
``.mltrain/inputs`` (or the input's name, or an output's folder) is a link leading out of it is refused,
and nothing is written where the link points."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from mltrain.remote import inputs as node_io


def cached_input(tmp_path: Path) -> tuple[node_io.NodeCache, dict]:
    cache = node_io.NodeCache(str(tmp_path / "cache"))
    data = b"rows\n"
    entry = ["sub/a.csv", len(data), hashlib.sha256(data).hexdigest(), None]
    cache.store(entry, io.BytesIO(data))
    return cache, {"name": "d", "mode": "mount", "type": "uri_folder", "uri": "data:d:1", "files": [entry]}


@pytest.mark.parametrize("link", [".mltrain/inputs", ".mltrain"])
def test_a_link_leaving_the_run_folder_is_refused(tmp_path: Path, link: str) -> None:
    cache, inp = cached_input(tmp_path)
    run_dir, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    (run_dir / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, run_dir / link)
    with pytest.raises(node_io.InputError, match="leads out of the run folder"):
        node_io.materialise(cache, inp, str(run_dir))
    assert not any(outside.rglob("*"))


def test_an_output_folder_that_is_a_link_out_is_refused(tmp_path: Path) -> None:
    run_dir, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    (run_dir / "outputs").mkdir(parents=True)
    os.symlink(outside, run_dir / "outputs" / "data")
    with pytest.raises(node_io.InputError, match="leads out of the run folder"):
        node_io.prepare_outputs(str(run_dir), ["o"])
    assert not any(outside.rglob("*"))


def test_a_mount_is_links_into_the_cache_or_for_root_read_only_copies(tmp_path: Path) -> None:
    cache, inp = cached_input(tmp_path)
    assert node_io.materialise(cache, inp, str(tmp_path / "bound"), bound_read_only=True) == 0  # links
    bound = tmp_path / "bound" / node_io.INPUTS_DIR / "d" / "sub" / "a.csv"
    assert bound.stat().st_nlink > 1 and oct(bound.stat().st_mode & 0o777) == oct(node_io.CACHE_MODE)
    copied = node_io.materialise(cache, inp, str(tmp_path / "run"))
    laid = tmp_path / "run" / node_io.INPUTS_DIR / "d" / "sub" / "a.csv"
    assert laid.read_bytes() == b"rows\n" and oct(laid.stat().st_mode & 0o777) == oct(node_io.CACHE_MODE)
    if os.geteuid() == 0:  # root writes through any mode: its own copy, so the cache never changes
        assert copied == len(b"rows\n") and laid.stat().st_nlink == 1
        laid.write_bytes(b"changed by root")
        assert cache.present(inp["files"][0])
    else:
        assert copied == 0 and not os.access(laid, os.W_OK)
