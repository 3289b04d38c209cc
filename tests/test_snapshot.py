"""Snapshots: ignore files, limits with an actionable error, content addressing, restore."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import write_script

from mltrain.errors import SnapshotError
from mltrain.workspace import Workspace


@pytest.fixture
def ws(project: Path) -> Workspace:
    return Workspace.open(str(project / ".mltrain"))


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def _blob_count(ws: Workspace) -> int:
    return sum(len(files) for _, _, files in os.walk(ws.blobs.root / "blobs"))


def test_ignore_files_at_every_level(ws, project):
    src = _tree(
        project / "src",
        {
            "train.py": "x",
            "data/big.csv": "1,2",
            "data/keep.csv": "3,4",
            "notes.tmp": "t",
            "secret.env": "k",
            "pkg/__pycache__/m.cpython-311.pyc": "c",
            "pkg/mod.py": "m",
            "pkg/scratch/out.bin": "b",
            ".git/HEAD": "ref",
            ".mltrainignore": "data/big.csv\n",
            ".gitignore": "*.tmp\n",
            ".amlignore": "secret.env\n",
            "pkg/.gitignore": "scratch/\n",
        },
    )
    snap = ws.snapshots.take(src)
    paths = {f.path for f in snap.files}
    # the top folder has .mltrainignore/.amlignore: as in Azure ML its .gitignore is not read there
    assert {"train.py", "data/keep.csv", "pkg/mod.py", ".mltrainignore", "notes.tmp"} <= paths
    assert not paths & {
        "data/big.csv",
        "secret.env",
        "pkg/scratch/out.bin",
        ".git/HEAD",
        "pkg/__pycache__/m.cpython-311.pyc",
    }


def test_negation_and_workspace_inside_source_is_left_out(ws, project):
    src = _tree(project, {"a.log": "1", "keep.log": "2", ".mltrainignore": "*.log\n!keep.log\n", "run.py": "p"})
    snap = ws.snapshots.take(src, exclude=(ws.root,))
    paths = {f.path for f in snap.files}
    assert "keep.log" in paths and "a.log" not in paths
    assert not any(p.startswith(".mltrain/") for p in paths)


def test_unchanged_folder_same_id_and_nothing_new_stored(ws, project):
    src = _tree(project / "src", {"a.py": "a", "b/c.py": "c"})
    first = ws.snapshots.take(src)
    blobs = _blob_count(ws)
    second = ws.snapshots.take(src)
    assert second.id == first.id and _blob_count(ws) == blobs
    (src / "a.py").write_text("changed")
    third = ws.snapshots.take(src)
    assert third.id != first.id and _blob_count(ws) == blobs + 2  # one new file, one new manifest


def test_identical_files_stored_once(ws, project):
    src = _tree(project / "src", {"x/one.txt": "same content", "y/two.txt": "same content"})
    before = _blob_count(ws)
    ws.snapshots.take(src)
    assert _blob_count(ws) == before + 2  # the shared content and the manifest


def test_restore_gives_back_the_files_and_modes(ws, project, tmp_path):
    src = _tree(project / "src", {"run.sh": "#!/bin/sh\necho hi\n", "d/e.txt": "e"})
    os.chmod(src / "run.sh", 0o755)
    snap = ws.snapshots.take(src)
    out = tmp_path / "restored"
    ws.snapshots.restore(snap.id[:12], out)
    assert (out / "d" / "e.txt").read_text() == "e"
    assert os.access(out / "run.sh", os.X_OK)


def test_limits_name_the_largest_files_and_the_ignore_file(ws, project):
    src = _tree(project / "src", {"train.py": "x", "data/huge.bin": b"0" * 3_000_000, "data/small.bin": b"1" * 10})
    with pytest.raises(SnapshotError) as err:
        ws.snapshots.take(src, max_size_mb=1)
    text = str(err.value)
    assert "data/huge.bin (3.0 MB)" in text and "data/ (3.0 MB)" in text
    assert str(src / ".mltrainignore") in text and "max_size_mb" in text
    with pytest.raises(SnapshotError, match="4 files|3 files"):
        ws.snapshots.take(src, max_files=2)


def test_limit_error_through_mltrain_records_no_run(mltrain, project):
    write_script(project / "src", "train.py", "print('x')\n")
    (project / "src" / "weights.bin").write_bytes(b"0" * 2_000_000)
    proc = mltrain(
        "environment=system", "~register", "job.source_dir=src", "job.script=train.py", "job.snapshot.max_size_mb=1"
    )
    assert proc.returncode == 2
    assert "weights.bin" in proc.stderr and ".mltrainignore" in proc.stderr
    assert not (project / ".mltrain" / "runs").exists() or not list((project / ".mltrain" / "runs").iterdir())
    (project / "src" / ".mltrainignore").write_text("*.bin\n")
    again = mltrain(
        "environment=system", "~register", "job.source_dir=src", "job.script=train.py", "job.snapshot.max_size_mb=1"
    )
    assert again.returncode == 0, again.output


def test_snapshot_restore_cli(cli, cli_json, mltrain, project, tmp_path):
    write_script(project / "src", "train.py", "print('from the snapshot')\n")
    assert mltrain("environment=system", "~register", "job.source_dir=src", "job.script=train.py").returncode == 0
    run = cli_json("runs", "list")[0]
    out = cli("snapshots", "restore", run["snapshot_id"][:10], str(tmp_path / "back"))
    assert out.returncode == 0, out.output
    assert (tmp_path / "back" / "train.py").read_text() == "print('from the snapshot')\n"
