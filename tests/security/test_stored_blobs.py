"""A shared workspace's records and blobs are untrusted: a stored sha256 or snapshot id is never a path,
a stored file mode is masked, and a blob whose content no longer matches its name is never restored,
run, downloaded or served. Records are crafted through the store's own SQL; files, CLI and dashboard
(under uvicorn on 127.0.0.1) are real."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from support import request, write_script
from ui.helpers import serving

from mltrain.workspace import Workspace, tables

SYSTEM = ["environment=system", "~register", "job.source_dir=src"]
RUN = "20260101_000000_abcdef"
SECRET = "root:$6$not-for-you:19000:0:99999:7:::\n"


def _ws(project: Path) -> Workspace:
    return Workspace.open(str(project / ".mltrain"))


def _secret(project: Path) -> Path:
    """A file outside the workspace standing for /etc/shadow, and the stored "sha256" naming it."""
    path = project.parent / "shadow"
    path.write_text(SECRET)
    return path


def _crafted(path: Path) -> str:
    """``..`` + an absolute path: joined as ``blobs/sha256/<first 2>/<rest>``, it made the blob path absolute."""
    return ".." + str(path)


def _run_with_artifact(ws: Workspace, rel: str, sha256: str, size: int = 10) -> None:
    ws.runs.create(RUN, "exp", run_dir=None)
    ws.runs.set_status(RUN, "Completed", exit_code=0)
    with ws.db.write() as conn:
        conn.execute(insert(tables.artifacts).values(run_id=RUN, path=rel, sha256=sha256, size=size))


def test_a_crafted_artifact_hash_is_read_by_no_command_and_no_dashboard_route(project, cli):
    ws = _ws(project)
    crafted = _crafted(_secret(project))
    _run_with_artifact(ws, "logs/std_log.txt", crafted)
    with ws.db.write() as conn:
        conn.execute(insert(tables.artifacts).values(run_id=RUN, path="outputs/t.csv", sha256=crafted, size=10))
    proc = cli("runs", "logs", RUN)
    assert "not-for-you" not in proc.stdout + proc.stderr
    assert proc.returncode == 2 and "refusing the stored blob name" in proc.stderr, proc.output
    assert "Traceback" not in proc.stderr
    proc = cli("runs", "download", RUN, "--dest", "dl")
    assert proc.returncode != 0 and "refusing the stored blob name" in proc.stderr, proc.output
    assert not [p for p in (project / "dl").rglob("*") if p.is_file()]
    with serving(project / ".mltrain") as ui:
        for path in (
            f"/api/runs/{RUN}/artifacts/logs/std_log.txt",
            f"/api/runs/{RUN}/artifacts/outputs/t.csv?download=1",
            f"/api/runs/{RUN}/preview?path=outputs/t.csv",
            f"/api/runs/{RUN}/log",
        ):
            resp = request(ui.url, "GET", path)
            assert b"not-for-you" not in resp.body, path
            assert resp.status in (400, 410), (path, resp.status)
            assert b"refusing the stored blob name" in resp.body, (path, resp.status, resp.body[:300])
    report = json.loads(cli("workspace", "check", "--json").stdout)
    assert report["ok"] is False and report["bad_names"] == [repr(crafted)]


def test_a_changed_artifact_blob_is_neither_served_nor_printed_nor_downloaded(project, cli):
    ws = _ws(project)
    sha = ws.blobs.put_bytes(b"epoch 1\nepoch 2\n")
    _run_with_artifact(ws, "logs/std_log.txt", sha, 16)
    blob = ws.blobs.path(sha)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"changed by someone else\n")
    proc = cli("runs", "logs", RUN)
    assert proc.returncode == 2 and "is corrupted" in proc.stderr and "changed by" not in proc.stdout, proc.output
    with serving(project / ".mltrain") as ui:
        resp = request(ui.url, "GET", f"/api/runs/{RUN}/artifacts/logs/std_log.txt")
        assert resp.status == 410 and b"changed by" not in resp.body and b"is corrupted" in resp.body, resp.body
    proc = cli("runs", "download", RUN, "--dest", "dl")
    assert proc.returncode == 1 and "is corrupted" in proc.stderr, proc.output
    assert not (project / "dl" / "logs" / "std_log.txt").exists()


def test_an_unchanged_artifact_is_served_whole_and_checked_once(project, cli):
    ws = _ws(project)
    data = b"a,b\n" + b"1,2\n" * 100_000
    sha = ws.blobs.put_bytes(data)
    _run_with_artifact(ws, "outputs/t.csv", sha, len(data))
    with serving(project / ".mltrain") as ui:
        for _ in range(2):
            resp = request(ui.url, "GET", f"/api/runs/{RUN}/artifacts/outputs/t.csv")
            assert resp.status == 200 and resp.body == data
            assert resp.headers["content-length"] == str(len(data))
        preview = request(ui.url, "GET", f"/api/runs/{RUN}/preview?path=outputs/t.csv").json()
        assert preview["columns"] == ["a", "b"] and preview["rows"][0] == ["1", "2"]


def _manifest_snapshot(ws: Workspace, entries: list[list[object]]) -> str:
    """A snapshot whose manifest (a real blob, named by its hash) lists ``entries``."""
    snap_id = ws.blobs.put_bytes(json.dumps(entries).encode())
    with ws.db.write() as conn:
        conn.execute(
            insert(tables.snapshots).values(id=snap_id, source_dir="x", file_count=1, total_bytes=1, created_at=0)
        )
    return snap_id


def test_a_manifest_entry_naming_a_file_outside_the_store_is_refused(project, cli):
    ws = _ws(project)
    secret = _secret(project)
    snap_id = _manifest_snapshot(ws, [["train.py", _crafted(secret), len(SECRET), 0o644]])
    proc = cli("snapshots", "restore", snap_id[:12], "restored")
    assert proc.returncode == 2 and "refusing the stored blob name" in proc.stderr, proc.output
    assert not (project / "restored" / "train.py").exists()


def test_a_stored_mode_is_masked_no_setuid_and_no_world_write(project, cli):
    ws = _ws(project)
    sha = ws.blobs.put_bytes(b"#!/bin/sh\necho hi\n")
    snap_id = _manifest_snapshot(ws, [["run.sh", sha, 18, 0o6777], ["data.txt", sha, 18, 0o666]])
    proc = cli("snapshots", "restore", snap_id, "restored")
    assert proc.returncode == 0, proc.output
    assert stat.S_IMODE((project / "restored" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((project / "restored" / "data.txt").stat().st_mode) == 0o644


def test_a_snapshot_id_that_is_a_path_reads_no_manifest_from_it(project, cli):
    ws = _ws(project)
    sha = ws.blobs.put_bytes(b"print('planted')\n")
    planted = project.parent / "some" / "file.json"
    planted.parent.mkdir()
    planted.write_text(json.dumps([["planted.py", sha, 17, 0o644]]))
    crafted = _crafted(planted)
    ws.runs.create(RUN, "exp", run_dir=None)
    with ws.db.write() as conn:
        conn.execute(
            insert(tables.snapshots).values(id=crafted, source_dir="x", file_count=1, total_bytes=1, created_at=0)
        )
        conn.execute(update(tables.runs).where(tables.runs.c.id == RUN).values(snapshot_id=crafted))
    proc = cli("runs", "download", RUN, "--snapshot", "--dest", "dl")
    assert proc.returncode == 2 and "not a snapshot id" in proc.stderr, proc.output
    assert not (project / "dl" / "source" / "planted.py").exists()
    for given in (crafted, "../some/file.json", "%", "_"):
        proc = cli("snapshots", "restore", given, "restored")
        assert proc.returncode == 2 and "not a snapshot id" in proc.stderr, (given, proc.output)
    # a stored id that starts like one: found by its prefix, refused before it names a file
    hexlike = "ab" + "/.." * 20 + str(planted)
    with ws.db.write() as conn:
        conn.execute(
            insert(tables.snapshots).values(id=hexlike, source_dir="x", file_count=1, total_bytes=1, created_at=0)
        )
    proc = cli("snapshots", "restore", "ab", "restored")
    assert proc.returncode == 2 and "refusing the stored blob name" in proc.stderr, proc.output
    assert not (project / "restored").exists()


def test_a_changed_snapshot_blob_is_never_restored_and_the_next_run_runs_the_real_code(project, mltrain, cli_json, cli):
    write_script(project / "src", "train.py", "print('the real code')\n")
    proc = mltrain(*SYSTEM, "job.script=train.py")
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "list")[0]
    ws = _ws(project)
    snap = ws.snapshots.get(run["snapshot_id"])
    sha = next(f.sha256 for f in snap.files if f.path == "train.py")
    blob = ws.blobs.path(sha)
    os.chmod(blob, 0o644)
    blob.write_text("print('changed code')\n")
    for args in (["snapshots", "restore", snap.id, "restored"], ["runs", "download", run["id"], "--snapshot"]):
        proc = cli(*args)
        assert proc.returncode == 2 and f"blob {sha} is corrupted" in proc.stderr, proc.output
        assert "Traceback" not in proc.stderr
    assert not (project / "restored" / "train.py").exists()
    assert not (project / run["id"] / "source" / "train.py").exists()
    assert not list(project.rglob("*.part"))
    proc = mltrain(*SYSTEM, "job.script=train.py")
    assert proc.returncode == 0, proc.output
    assert "the real code" in proc.stdout and "changed code" not in proc.stdout
    assert ws.blobs.read_bytes(sha) == b"print('the real code')\n"  # taking the snapshot mended the blob


@pytest.mark.parametrize("name", ["../etc/shadow", "A" * 64, "0" * 63, "0" * 65, "0" * 62 + "/x", ""])
def test_a_blob_name_that_is_not_a_sha256_is_refused(project, name):
    from mltrain.errors import WorkspaceError

    ws = _ws(project)
    with pytest.raises(WorkspaceError, match="not a sha256|a sha256 is 64 hex"):
        ws.blobs.path(name)
