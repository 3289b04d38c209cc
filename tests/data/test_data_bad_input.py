"""Bad and hostile input to `mltrain data ...`: a clear error naming the problem and the fix, no
traceback, and nothing recorded or written where it should not be."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import update

from mltrain.workspace import Workspace
from mltrain.workspace import tables as t


def refused(result, *needles: str) -> None:
    assert result.returncode != 0, result.output
    assert "Traceback" not in result.stderr, result.output
    for needle in needles:
        assert needle in result.stderr, result.output


@pytest.fixture
def raw(project: Path) -> Path:
    (project / "raw").mkdir()
    (project / "raw" / "f.txt").write_text("x")
    return project / "raw"


def test_unknown_assets_versions_and_aliases_name_the_valid_choices(mt, mt_json, raw: Path):
    refused(mt("data", "show", "nothing"), "no data asset 'nothing'", "no data assets", "mltrain data create")
    mt_json("data", "create", "iris", "raw")
    mt_json("data", "create", "iris", "raw")
    mt_json("data", "create", "wine", "raw")
    refused(mt("data", "show", "nothing"), "no data asset 'nothing'", "data assets: iris, wine")
    refused(mt("data", "download", "iris:7", "out"), "data asset iris has no version 7", "versions: 1, 2")
    refused(mt("data", "show", "data:iris@prod"), "has no alias 'prod'", "mltrain data alias iris VERSION prod")
    refused(mt("data", "alias", "iris", "9", "prod"), "has no version 9")
    refused(mt("data", "check", "iris:x"), "is not a data reference", "data:NAME:VERSION")
    assert not (raw.parent / "out").exists()


def test_bad_names_types_and_paths_record_nothing(mt, mt_json, raw: Path, project: Path):
    refused(mt("data", "create", "../evil", "raw"), "not a valid data asset name", "letters, digits")
    refused(mt("data", "create", "-x", "raw"), "")  # argparse: an option, not a name
    refused(mt("data", "create", "a" * 300, "raw"), "300 characters long")
    refused(mt("data", "create", "ok", "missing-folder"), "missing-folder does not exist")
    refused(mt("data", "create", "ok", "raw", "--type", "uri_file"), "is a folder, not uri_file", "uri_folder")
    (project / "empty").mkdir()
    refused(mt("data", "create", "ok", "empty"), "holds no files")
    refused(mt("data", "create", "ok", "raw", "--tag", "novalue"), "KEY=VALUE")
    refused(mt("data", "create", "ok", "ftp://host/x"), "no ftp:// URIs")
    mt_json("data", "create", "ok", "raw")
    refused(mt("data", "alias", "ok", "1", "bad alias"), "not a valid alias name")
    refused(mt("data", "alias", "ok", "1", "42"), "is a number")
    assert [(v["name"], v["version"]) for v in mt_json("data", "list")] == [("ok", 1)]


def test_a_symlink_out_of_the_folder_is_refused_at_create(mt, mt_json, raw: Path, tmp_path: Path):
    secret = tmp_path / "outside.txt"
    secret.write_text("not yours")
    (raw / "link.txt").symlink_to(secret)
    refused(mt("data", "create", "d", "raw"), "symlinks that lead out of it", "link.txt")
    assert mt_json("data", "list") == []
    (raw / "link.txt").unlink()
    (raw / "inside.txt").symlink_to(raw / "f.txt")  # a link inside is stored as the file it points to
    manifest = mt_json("data", "show", mt_json("data", "create", "d", "raw")["ref"])["manifest"]
    assert [e["relpath"] for e in manifest] == ["f.txt", "inside.txt"]


@pytest.mark.parametrize("bad", ["../../escape.txt", "/tmp/absolute.txt", "a/../../b.txt"])
def test_a_tampered_manifest_is_refused_at_download(mt, mt_json, raw: Path, project: Path, bad: str):
    dv = mt_json("data", "create", "d", "raw")
    ws = Workspace.open(str(project / ".mltrain"))
    with ws.db.write() as conn:
        conn.execute(update(t.data_files).where(t.data_files.c.version_id == dv["id"]).values(relpath=bad))
    refused(mt("data", "download", "d", "out/inner"), "refusing the stored path")
    assert not (project / "out").exists() and not (project / "escape.txt").exists()
    assert not Path("/tmp/absolute.txt").exists()


def test_a_symlink_in_the_destination_leading_out_is_refused(mt, mt_json, project: Path, tmp_path: Path):
    (project / "raw" / "sub").mkdir(parents=True)
    (project / "raw" / "sub" / "f.txt").write_text("x")
    mt_json("data", "create", "d", "raw")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / "out").mkdir()
    (project / "out" / "sub").symlink_to(elsewhere)
    refused(mt("data", "download", "d", "out"), "outside")
    assert list(elsewhere.iterdir()) == []


def test_a_tampered_blob_hash_is_refused(mt, mt_json, raw: Path, project: Path):
    dv = mt_json("data", "create", "d", "raw")
    ws = Workspace.open(str(project / ".mltrain"))
    with ws.db.write() as conn:
        conn.execute(update(t.data_files).where(t.data_files.c.version_id == dv["id"]).values(sha256="../../x"))
    refused(mt("data", "download", "d", "out"), "is not a sha256")


@pytest.mark.parametrize("store", ["OnePassChanging", "TwoPassChanging"])
def test_a_file_changing_while_stored_is_detected(mt, mt_json, project: Path, store: str):
    (project / "raw").mkdir()
    (project / "raw" / "big.bin").write_bytes(os.urandom(3 << 20))
    conf = project / "conf" / "datastore"
    conf.mkdir(parents=True)
    (conf / "changing.yaml").write_text(f"_target_: changing_store.{store}\npath: {project / 'store'}\n")
    refused(mt("data", "create", "d", "raw", "--datastore", "changing"), "big.bin changed while it was being stored")
    assert mt_json("data", "list") == []


def test_datastore_config_errors_are_clear(mt, mt_json, raw: Path, project: Path):
    refused(mt("data", "create", "d", "raw", "--datastore", "nowhere"), "no datastore 'nowhere'", "folder, gcs")
    refused(mt("data", "create", "d", "raw", "--datastore", "folder"), "datastore folder needs datastore.path")
    refused(mt("data", "create", "d", "raw", "--datastore", "s3", "datastore.endpointurl=x"), "endpointurl")
    refused(mt("data", "create", "d", "raw", "--datastore", "s3", "job.x=1"), "is not a datastore option")
    typo = mt("data", "create", "d", "raw", "--datastore", "s3", "+datastore.secret_key=hunter2")
    refused(typo, "Key 'secret_key' not in 'S3DatastoreConfig'", "its options: url, endpoint_url")
    conf = project / "conf" / "datastore"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("_target_: mltrain.workspace.datastores.objects.S3Datastore\nsecret_key: hunter2\n")
    secret = mt("data", "create", "d", "raw", "--datastore", "mine")
    refused(secret, "secret_key would hold a credential", "environment, a profile, or a file")
    assert "hunter2" not in secret.stderr + secret.stdout + typo.stderr + typo.stdout
    refused(mt("data", "create", "d", "raw", "--datastore", "https"), "read-only")
    refused(mt("data", "create", "d", "raw", "--datastore", "s3"), "has no url", "datastore.url=s3://")
    folder = mt_json("data", "create", "d", "raw", "--datastore", "folder", f"datastore.path={project / 'shared'}")
    assert folder["datastore"] == "folder" and (project / "shared" / "blobs" / "sha256").is_dir()
    recorded = json.dumps(mt_json("data", "show", "d")["datastore_config"])
    assert str(project / "shared") in recorded


@pytest.mark.parametrize(
    ("uri", "package", "extra"), [("az://box/data/", "adlfs", "azure"), ("gs://b/d/", "gcsfs", "gcs")]
)
def test_an_object_store_without_its_package_names_the_extra(mt, mt_json, project: Path, uri, package, extra):
    try:
        __import__(package)
    except ImportError:
        refused(mt("data", "create", "d", uri), f"need the {package} package", f"pip install 'mltrain[{extra}]'")
        assert mt_json("data", "list") == []
    else:
        pytest.skip(f"{package} is installed here")
