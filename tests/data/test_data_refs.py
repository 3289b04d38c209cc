"""References that stay where they are: a file served over HTTP (a real server on loopback) and a
shared folder by ``file://``; and the schema upgrade that adds the data tables."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from mltrain.workspace import Workspace, tables
from mltrain.workspace import migrations as mig


def refused(result, *needles: str) -> None:
    assert result.returncode != 0, result.output
    assert "Traceback" not in result.stderr, result.output
    for needle in needles:
        assert needle in result.stderr, result.output


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder): a static file server on 127.0.0.1, stopped after the test."""
    folder = tmp_path / "www"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


def test_a_file_over_http_is_recorded_by_its_sha256_and_checked(web, mt, mt_json, project: Path):
    base, folder = web
    (folder / "iris.csv").write_bytes(b"a,b\n1,2\n")
    dv = mt_json("data", "create", "web", f"{base}/iris.csv")
    assert (dv["type"], dv["stored"], dv["datastore"]) == ("uri_file", False, "https")
    entry = mt_json("data", "show", "web")["manifest"][0]
    assert entry["relpath"] == "iris.csv" and entry["sha256"] and entry["checksum"] is None  # no ETag: hashed
    got = mt("data", "download", "web", "dl")
    assert got.returncode == 0 and "sha256 verified" in got.stdout, got.output
    assert (project / "dl" / "iris.csv").read_bytes() == b"a,b\n1,2\n"
    assert mt("data", "check", "web").returncode == 0
    (folder / "iris.csv").write_bytes(b"a,b\n1,3\n")
    check = mt("data", "check", "web")
    assert check.returncode == 1 and "changed:" in check.stdout and "iris.csv" in check.stdout
    refused(mt("data", "download", "web", "dl2"), "iris.csv", "not the expected one")
    assert not (project / "dl2" / "iris.csv").exists()

    refused(mt("data", "create", "web", f"{base}/"), "cannot list a folder", "uri_file")
    refused(mt("data", "create", "web", f"{base}/none.csv", "--type", "uri_file"), "does not exist")
    refused(mt("data", "create", "web", f"{base}/iris.csv?sig=abc"), "signature or token")
    assert [v["version"] for v in mt_json("data", "list", "web")] == [1]


def test_a_shared_folder_is_referenced_in_place(mt, mt_json, project: Path, tmp_path: Path):
    shared = tmp_path / "nfs" / "set"
    (shared / "sub").mkdir(parents=True)
    (shared / "sub" / "x.txt").write_text("x")
    (shared / "y.txt").write_text("y")
    dv = mt_json("data", "create", "shared", f"file://{shared}")
    assert (dv["stored"], dv["datastore"], dv["file_count"]) == (False, "folder", 2)
    assert not (project / ".mltrain" / "artifacts" / "blobs").exists()  # nothing copied
    assert mt_json("data", "download", "shared", "dl")["path"] == str(project / "dl")
    assert (project / "dl" / "sub" / "x.txt").read_text() == "x"
    (shared / "y.txt").unlink()
    report = mt("data", "check", "shared", "--json")
    assert report.returncode == 1 and '"missing": [\n    "y.txt"\n  ]' in report.stdout


def test_a_version_4_workspace_is_upgraded_with_the_data_tables(tmp_path: Path):
    root = tmp_path / "old"
    root.mkdir()
    engine = create_engine(f"sqlite:///{root / 'mltrain.db'}")
    with engine.begin() as conn:
        mig.create_version(conn, 4)
    engine.dispose()
    ws = Workspace.open(str(root))
    with ws.db.read() as conn:
        assert conn.execute(select(tables.schema_info.c.version)).scalar() == tables.SCHEMA_VERSION == 6
    (tmp_path / "f.txt").write_text("x")
    from mltrain.data.create import create

    assert create(ws, "d", tmp_path / "f.txt").ref == "data:d:1"
    assert ws.data.links(run_id="none") == []
