"""`mltrain data ...` on local data: versions stored once by content, download verified, check,
aliases, archive, lineage section, and `workspace check` knowing data blobs. ``cli`` runs the command
as a real process; ``mt`` runs the same ``main`` in this process (most calls, to keep the tests fast)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mltrain.workspace import Workspace


def blobs(project: Path) -> set[str]:
    root = project / ".mltrain" / "artifacts" / "blobs" / "sha256"
    return {p.parent.name + p.name for p in root.glob("*/*")} if root.is_dir() else set()


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_versions_store_each_file_once_and_download_verified(cli, cli_json, mt, mt_json, project: Path):
    src = make_folder(project / "raw", {"train.csv": b"a,b\n1,2\n", "sub/test.csv": b"a,b\n3,4\n"})
    v1 = cli_json("data", "create", "iris", "raw", "--tag", "stage=dev", "--tag", "team=ml", "--description", "iris")
    assert (v1["ref"], v1["type"], v1["file_count"], v1["stored"]) == ("data:iris:1", "uri_folder", 2, True)
    assert v1["tags"] == {"stage": "dev", "team": "ml"} and v1["datastore"] == "workspace"
    assert v1["source"] == str(src) and len(v1["digest"]) == 64
    assert len(blobs(project)) == 2

    (src / "sub" / "test.csv").write_bytes(b"a,b\n3,5\n")  # one file changes, one stays
    created = mt("data", "create", "iris", "raw")
    assert created.returncode == 0, created.output
    assert "created data:iris:2: 2 files" in created.stdout and "stored 2/2 files" in created.stderr
    assert len(blobs(project)) == 3  # the unchanged file was not stored again

    single = mt_json("data", "create", "iris-train", "raw/train.csv")
    assert single["type"] == "uri_file" and len(blobs(project)) == 3  # same content as in iris:1
    assert mt_json("data", "show", "data:iris-train")["manifest"][0]["relpath"] == "train.csv"

    listed = mt_json("data", "list")
    assert [(v["name"], v["version"]) for v in listed] == [("iris", 2), ("iris-train", 1)]
    assert [v["version"] for v in mt_json("data", "list", "iris")] == [2, 1]

    shown = mt_json("data", "show", "iris:1")
    assert {e["relpath"]: e["size"] for e in shown["manifest"]} == {"sub/test.csv": 8, "train.csv": 8}
    assert shown["lineage"] == {"produced_by": None, "read_by": [], "written_by": []}
    text = mt("data", "show", "iris")
    assert text.returncode == 0 and "iris version 2" in text.stdout and "Lineage:" in text.stdout
    assert "read by:     (no runs yet)" in text.stdout

    out = cli_json("data", "download", "iris:1", "dl")
    assert out["path"] == str(project / "dl")
    assert (project / "dl" / "sub" / "test.csv").read_bytes() == b"a,b\n3,4\n"
    assert (project / "dl" / "train.csv").read_bytes() == b"a,b\n1,2\n"
    got = cli("data", "download", "iris-train", "one")
    assert got.returncode == 0 and "sha256 verified" in got.stdout
    assert (project / "one" / "train.csv").read_bytes() == b"a,b\n1,2\n"


def test_a_damaged_blob_fails_the_download_and_leaves_no_file(mt, mt_json, project: Path):
    make_folder(project / "raw", {"a.bin": b"A" * 5000, "b.bin": b"B" * 7000})
    shown = mt_json("data", "create", "blobs", "raw")
    sha = next(e for e in mt_json("data", "show", shown["ref"])["manifest"] if e["relpath"] == "b.bin")["sha256"]
    blob = project / ".mltrain" / "artifacts" / "blobs" / "sha256" / sha[:2] / sha[2:]
    os.chmod(blob, 0o644)
    blob.write_bytes(b"B" * 6999 + b"X")
    bad = mt("data", "download", "blobs", "dl")
    assert bad.returncode != 0 and "b.bin" in bad.stderr and "Traceback" not in bad.stderr
    assert not (project / "dl" / "b.bin").exists()
    assert not [p for p in (project / "dl").rglob("*") if p.name.endswith(".part")]
    report = mt("workspace", "check")
    assert report.returncode != 0 and sha in report.stdout


def test_check_names_changed_missing_and_new_files(mt, mt_json, project: Path):
    src = make_folder(project / "raw", {"keep.txt": b"k", "edit.txt": b"e", "gone.txt": b"g"})
    mt_json("data", "create", "d", "raw")
    ok = mt("data", "check", "d")
    assert ok.returncode == 0 and "matches its source" in ok.stdout
    (src / "edit.txt").write_bytes(b"E")  # same size, other content
    (src / "gone.txt").unlink()
    (src / "new.txt").write_bytes(b"n")
    proc = mt("data", "check", "d:1", "--json")
    assert proc.returncode == 1, proc.output
    report = json.loads(proc.stdout)
    assert (report["changed"], report["missing"], report["new"]) == (["edit.txt"], ["gone.txt"], ["new.txt"])
    text = mt("data", "check", "d")
    assert text.returncode == 1 and "changed:" in text.stdout and "edit.txt" in text.stdout
    assert "mltrain data create d" in text.stdout


def test_aliases_archive_and_references(mt, mt_json, project: Path):
    make_folder(project / "raw", {"f.txt": b"1"})
    for _ in range(3):
        mt_json("data", "create", "d", "raw")
    moved = mt("data", "alias", "d", "1", "prod")
    assert moved.returncode == 0 and "data:d@prod -> version 1" in moved.stdout
    mt_json("data", "alias", "d", "2", "prod")
    assert mt_json("data", "show", "data:d@prod")["version"] == 2
    assert mt_json("data", "show", "d@prod")["aliases"] == ["prod"]

    assert mt_json("data", "archive", "d:3")["archived"] is True
    assert mt_json("data", "show", "data:d")["version"] == 2  # the latest not archived
    assert [v["version"] for v in mt_json("data", "list", "d")] == [2, 1]
    assert [v["version"] for v in mt_json("data", "list", "d", "--all")] == [3, 2, 1]
    assert mt_json("data", "show", "d:3")["archived"] is True  # still there by number
    for v in (1, 2):
        mt_json("data", "archive", f"d:{v}")
    none_left = mt("data", "show", "d")
    assert none_left.returncode != 0 and "every version of data asset d is archived" in none_left.stderr
    assert mt_json("data", "archive", "d:2", "--restore")["archived"] is False
    assert mt_json("data", "show", "data:d")["version"] == 2
    no_version = mt("data", "archive", "d")
    assert no_version.returncode != 0 and "archive needs a version" in no_version.stderr


def test_workspace_check_knows_data_blobs(mt, mt_json, project: Path):
    make_folder(project / "raw", {"f.txt": b"data blob"})
    sha = mt_json("data", "show", mt_json("data", "create", "d", "raw")["ref"])["manifest"][0]["sha256"]
    assert mt("workspace", "check").returncode == 0
    blob = project / ".mltrain" / "artifacts" / "blobs" / "sha256" / sha[:2] / sha[2:]
    os.chmod(blob, 0o644)
    blob.unlink()
    report = mt("workspace", "check")
    assert report.returncode != 0 and sha in report.stdout


def test_api_records_are_frozen_and_links_are_defined(project: Path):
    """The workspace store: frozen records, and run links (filled by jobs) show up on the version."""
    import dataclasses

    import pytest

    from mltrain.data.create import create

    make_folder(project / "raw", {"f.txt": b"x"})
    ws = Workspace.open(str(project / ".mltrain"))
    dv = create(ws, "d", project / "raw")
    with pytest.raises(dataclasses.FrozenInstanceError):
        dv.name = "other"  # type: ignore[misc]
    ws.runs.create("20260101_000000_abcdef", "exp")
    ws.data.link_run("20260101_000000_abcdef", "input", "train", version=dv, mode="download")
    links = ws.data.links(version_id=dv.id)
    assert [(x.run_id, x.direction, x.name, x.data_name, x.data_version, x.digest, x.mode) for x in links] == [
        ("20260101_000000_abcdef", "input", "train", "d", 1, dv.digest, "download")
    ]
    assert ws.data.links(run_id="20260101_000000_abcdef")[0].version_id == dv.id


def test_concurrent_creates_get_distinct_versions(project: Path):
    from concurrent.futures import ThreadPoolExecutor

    from mltrain.data.create import create

    make_folder(project / "raw", {"f.txt": b"same"})
    ws = Workspace.open(str(project / ".mltrain"))
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda _: create(ws, "shared", project / "raw").version, range(8)))
    assert sorted(versions) == list(range(1, 9))
    assert len(blobs(project)) == 1
