"""Data assets on object storage, against a real S3-compatible server (moto's, on loopback, with
request signing enforced): s3:// references, local data stored in an S3 datastore, download, check,
and the credential rules (from the environment or a file, never written or printed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from moto_s3 import free_port


def refused(result, *needles: str) -> None:
    assert result.returncode != 0, result.output
    assert "Traceback" not in result.stderr, result.output
    for needle in needles:
        assert needle in result.stderr, result.output


def workspace_blobs(project: Path) -> list[Path]:
    return [p for p in (project / ".mltrain" / "artifacts").rglob("*") if p.is_file()]


def test_an_s3_folder_is_recorded_where_it_is_downloaded_and_checked(s3, mt, mt_json, project: Path):
    s3.put("raw/a.csv", b"a,b\n1,2\n")
    s3.put("raw/sub/b.csv", b"a,b\n3,4\n")
    v1 = mt_json("data", "create", "ds", s3.url("raw") + "/", "--description", "on s3")
    assert (v1["type"], v1["stored"], v1["datastore"], v1["file_count"]) == ("uri_folder", False, "s3", 2)
    shown = mt_json("data", "show", "ds")
    assert [e["relpath"] for e in shown["manifest"]] == ["a.csv", "sub/b.csv"]
    assert all(e["checksum"].startswith("etag:") and e["sha256"] is None for e in shown["manifest"])
    assert workspace_blobs(project) == []  # nothing copied
    assert mt_json("data", "create", "ds", s3.url("raw"))["digest"] == v1["digest"]  # no slash: same folder

    got = mt("data", "download", "ds:1", "dl")
    assert got.returncode == 0 and "store checksum verified" in got.stdout, got.output
    assert (project / "dl" / "sub" / "b.csv").read_bytes() == b"a,b\n3,4\n"
    one = mt_json("data", "create", "one", s3.url("raw/sub/b.csv"))
    assert one["type"] == "uri_file" and one["source"] == s3.url("raw/sub/b.csv")
    assert mt_json("data", "download", "one", "dl1")["path"] == str(project / "dl1" / "b.csv")

    assert mt("data", "check", "ds:1").returncode == 0
    s3.put("raw/a.csv", b"a,b\n9,9\n")
    s3.delete("raw/sub/b.csv")
    s3.put("raw/c.csv", b"new")
    report = mt_json_fail(mt, "data", "check", "ds:1")
    assert (report["changed"], report["missing"], report["new"]) == (["a.csv"], ["sub/b.csv"], ["c.csv"])
    stale = mt("data", "download", "ds:1", "dl2")
    refused(stale, "changed at its source", "mltrain data check ds:1")
    assert not (project / "dl2" / "a.csv").exists()


def mt_json_fail(mt, *args: str) -> dict:
    import json

    result = mt(*args, "--json")
    assert result.returncode == 1, result.output
    return json.loads(result.stdout)


def test_local_data_stored_in_an_s3_datastore_once_by_content(s3, s3_datastore, mt, mt_json, project: Path):
    raw = project / "raw"
    (raw / "sub").mkdir(parents=True)
    (raw / "big.bin").write_bytes(b"B" * (7 << 20))  # a multipart upload
    (raw / "sub" / "small.txt").write_text("small")
    v1 = mt_json("data", "create", "d", "raw", "--datastore", s3_datastore)
    assert (v1["stored"], v1["datastore"], v1["datastore_kind"]) == (True, "teams3", "s3")
    keys = s3.keys()
    assert len(keys) == 2 and all(k.startswith("store/blobs/sha256/") for k in keys)
    assert workspace_blobs(project) == []
    (raw / "sub" / "small.txt").write_text("changed")
    assert mt_json("data", "create", "d", "raw", "--datastore", s3_datastore)["version"] == 2
    assert len(s3.keys()) == 3  # only the changed file was uploaded

    got = mt("data", "download", "d:1", "dl")
    assert got.returncode == 0 and "sha256 verified" in got.stdout, got.output
    assert (project / "dl" / "big.bin").read_bytes() == b"B" * (7 << 20)
    assert (project / "dl" / "sub" / "small.txt").read_text() == "small"

    small = next(e for e in mt_json("data", "show", "d:1")["manifest"] if e["relpath"] == "sub/small.txt")
    s3.delete(f"store/blobs/sha256/{small['sha256'][:2]}/{small['sha256'][2:]}")
    report = mt_json_fail(mt, "data", "check", "d:1")
    assert report["missing_blobs"] == ["sub/small.txt"] and report["changed"] == ["sub/small.txt"]


def test_credentials_are_never_written_or_printed(
    s3, s3_datastore, cli, mt, project: Path, tmp_path: Path, monkeypatch
):
    (project / "raw").mkdir()
    (project / "raw" / "f.txt").write_text("data")
    s3.put("ref/g.txt", b"ref")
    outputs = [
        cli("data", "create", "a", "raw", "--datastore", s3_datastore, env=s3.env),
        cli("data", "create", "b", s3.url("ref") + "/", env=s3.env),
        cli("data", "show", "a", env=s3.env),
        cli("data", "download", "b", "dl", env=s3.env),
    ]
    # credentials from a file named in the config (a profile of an AWS credentials file), none in the environment
    creds = tmp_path / "aws-credentials"
    creds.write_text(f"[team]\naws_access_key_id = {s3.server.key_id}\naws_secret_access_key = {s3.server.secret}\n")
    conf = project / "conf" / "datastore" / "fromfile.yaml"
    conf.write_text(
        f"defaults:\n  - s3_schema\n_target_: mltrain.workspace.datastores.objects.S3Datastore\n"
        f"endpoint_url: {s3.server.endpoint}\nprofile: team\ncredentials_file: {creds}\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    outputs.append(mt("data", "create", "c", s3.url("ref") + "/", "--datastore", "fromfile"))
    outputs.append(mt("data", "show", "c", "--json"))
    outputs.append(mt("data", "check", "c"))
    for out in outputs:
        assert out.returncode == 0, out.output
    assert f'"credentials_file": "{creds}"' in outputs[-2].stdout and '"profile": "team"' in outputs[-2].stdout
    secret, key_id = s3.server.secret.encode(), s3.server.key_id.encode()
    for out in outputs:
        assert s3.server.secret not in out.stdout + out.stderr and s3.server.key_id not in out.stdout + out.stderr
    written = [p for p in (project / ".mltrain").rglob("*") if p.is_file()]
    assert any(p.name == "mltrain.db" for p in written)
    for path in written:
        content = path.read_bytes()
        assert secret not in content and key_id not in content, path


def test_wrong_missing_or_unreachable_credentials_are_clear_errors(
    s3, s3_datastore, cli, mt, project: Path, monkeypatch
):
    s3.put("raw/f.txt", b"x")
    (project / "raw").mkdir()
    (project / "raw" / "f.txt").write_text("x")
    wrong = cli("data", "create", "d", s3.url("raw") + "/", env={**s3.env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    refused(wrong, "refused access", "AWS_ACCESS_KEY_ID", "datastore.credentials_file")
    assert "not-the-secret" not in wrong.stdout + wrong.stderr
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOBODY")
    refused(mt("data", "create", "d", "raw", "--datastore", s3_datastore), "refused access")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.server.key_id)

    closed = f"http://127.0.0.1:{free_port()}"
    far = mt("data", "create", "d", s3.url("raw") + "/", "--datastore", "s3", f"datastore.endpoint_url={closed}",
             "datastore.retries=0", "datastore.connect_timeout_s=2")  # fmt: skip
    refused(far, "cannot reach", "datastore.endpoint_url")
    bad_url = mt("data", "create", "d", s3.url("raw") + "/", "--datastore", "s3",
                 "datastore.endpoint_url=http://user:pw@127.0.0.1:1")  # fmt: skip
    refused(bad_url, "holds a user name or password")
    assert "pw@" not in bad_url.stderr
    refused(mt("data", "create", "d", "s3://no-such-bucket/x/"), "does not exist")
    refused(mt("data", "create", "d", s3.url("raw") + "/", "--datastore", "gcs"), "is a s3:// URI", "gcs datastore")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    refused(mt("data", "create", "d", s3.url("raw") + "/"), "no usable credentials", "AWS_SECRET_ACCESS_KEY")
    assert mt("data", "list", "--json").stdout.strip() == "[]"  # nothing was recorded


@pytest.mark.parametrize("hostile", ["raw/../../etc/x", "raw//double"])
def test_hostile_object_keys_are_refused_at_create(s3, mt, mt_json, hostile: str):
    s3.put("raw/ok.txt", b"ok")
    s3.put(hostile, b"bad")
    refused(mt("data", "create", "d", s3.url("raw") + "/"), "refusing the path")
    assert mt_json("data", "list") == []


def imported(proc) -> set[str]:
    """The modules a process run with PYTHONPROFILEIMPORTTIME=1 imported (its stderr's import lines)."""
    lines = (line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:"))
    return {name.split(".")[0] for name in lines}


def test_reading_an_s3_datastore_does_not_load_s3fs_or_hydra(s3, mt_json, cli, s3_datastore, project: Path):
    """Download, check and listing go through botocore's own client: a one-off command does not pay for
    importing s3fs, aiobotocore and aiohttp (seconds on a loaded machine); the datastore is made from
    its recorded options without Hydra and OmegaConf (0.2-0.3 s)."""
    s3.put("raw/a.csv", b"a,b\n1,2\n")
    s3.put("raw/sub/b.csv", b"a,b\n3,4\n")
    mt_json("data", "create", "ref", s3.url("raw") + "/")
    (project / "local").mkdir()
    (project / "local" / "x.txt").write_text("stored")
    mt_json("data", "create", "kept", "local", "--datastore", s3_datastore)
    slow = {"s3fs", "aiobotocore", "aiohttp"}
    for args in (
        ("data", "download", "ref:1", "dl"),
        ("data", "check", "ref:1"),
        ("data", "download", "kept:1", "dl2"),
        ("data", "create", "again", s3.url("raw") + "/"),
    ):
        proc = cli(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert proc.returncode == 0, proc.output
        assert imported(proc) & slow == set(), args
        if args[1] != "create":  # create composes a named datastore's config (OmegaConf); reading needs none
            assert imported(proc) & {"hydra", "omegaconf"} == set(), args
    assert (project / "dl" / "sub" / "b.csv").read_bytes() == b"a,b\n3,4\n"
    assert (project / "dl2" / "x.txt").read_text() == "stored"
