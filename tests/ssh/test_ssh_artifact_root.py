"""An SSH host and a workspace whose artifact root is on object storage (a real S3-compatible server,
moto's, on loopback): the host fetches the snapshot's blobs from the bucket itself, by signed URLs the
driver hands it (no credentials on the host), instead of receiving them from the driver; a blob in the
bucket that is not what its name says is refused there and sent by the driver from its checked copy.

moto's server answers a presigned URL with a 500 while it enforces signing, so this module starts one
that does not (stopped by PID)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest
from support import write_script
from test_ssh_runs import _prepared, _run_once, _two_files_and_a_new_host

from mltrain.workspace import Workspace, WorkspaceSettings

sys.path.insert(0, str(Path(__file__).parent.parent / "data"))
from moto_s3 import running_moto  # noqa: E402


@pytest.fixture(scope="module")
def open_moto(tmp_path_factory: pytest.TempPathFactory):
    with running_moto(tmp_path_factory.mktemp("moto-open"), enforce_auth=False) as server:
        yield server


def test_the_host_fetches_snapshot_blobs_from_the_bucket_itself(tmp_path, ssh_pool, open_moto, monkeypatch):
    for key, value in open_moto.env().items():
        monkeypatch.setenv(key, value)
    bucket = open_moto.bucket(f"ssh-{secrets.token_hex(4)}")
    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws"), None, f"s3://{bucket}/arts"))
    source, target = _two_files_and_a_new_host(tmp_path, ssh_pool, "s3-arts")
    try:
        env, built = _prepared(ws, target, tmp_path)
        assert _run_once(ws, target, source, env, built) == (0, "rows 20000\n")
        first = dict(target.stats)
        assert first["blobs_fetched"] == 2  # job.py and data.py, from the bucket
        assert first["bytes_sent"] < 50_000  # only the in-script API, which is not in the bucket

        # a hostile object under the name of the next file's blob: the host refuses it, the driver sends
        write_script(source, "data.py", "ROWS = " + repr(list(range(30000))) + "\n")
        snap = ws.snapshots.take(source)
        sha = next(f.sha256 for f in snap.files if f.path == "data.py")
        open_moto.client().put_object(Bucket=bucket, Key=f"arts/blobs/sha256/{sha[:2]}/{sha[2:]}", Body=b"ROWS = []\n")
        assert _run_once(ws, target, source, env, built) == (0, "rows 30000\n")
        assert target.stats["blobs_fetched"] == first["blobs_fetched"]
        assert target.stats["blobs_sent"] == first["blobs_sent"] + 1
    finally:
        target.close()


READER = """
import os, sys
path = sys.argv[sys.argv.index("--data") + 1]
for root, _dirs, names in sorted(os.walk(path)):
    for n in sorted(names):
        print("SEEN", os.path.relpath(os.path.join(root, n), path), open(os.path.join(root, n)).read())
"""


def test_an_input_stored_in_the_bucket_is_fetched_by_the_host_itself(
    project: Path, mltrain, cli_json, ssh_pool, open_moto, monkeypatch
):
    for key, value in open_moto.env().items():
        monkeypatch.setenv(key, value)
    bucket = open_moto.bucket(f"ssh-{secrets.token_hex(4)}")
    monkeypatch.setenv("MLTRAIN_ARTIFACT_ROOT", f"s3://{bucket}/arts")
    content = {"a.csv": f"a,b {secrets.token_hex(8)}", "sub/b.txt": secrets.token_hex(8)}  # not cached anywhere
    for rel, text in content.items():
        write_script(project / "raw" / Path(rel).parent, Path(rel).name, text)
    cli_json("data", "create", "raw", str(project / "raw"))  # stored in the workspace datastore: the bucket
    write_script(project / "src", "read.py", READER)
    job = ["job.source_dir=src", "job.script=read.py", "~register", "+job.arguments.data=${inputs.train}"]
    proc = mltrain(*ssh_pool.overrides(ssh_pool.hosts[0]), *job, "+job.inputs.train.path=data:raw")
    assert proc.returncode == 0, proc.output
    assert [line for line in proc.stdout.splitlines() if line.startswith("SEEN")] == [
        f"SEEN {rel} {text}" for rel, text in sorted(content.items())
    ]
    assert "input train: 2 of those files fetched by" in proc.stdout + proc.stderr, proc.output


def _put(url: str, headers: dict[str, str], data: bytes) -> int:
    import urllib.request

    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the test's loopback server
        return int(response.status)


def test_an_upload_by_signed_url_becomes_a_blob_only_when_the_store_computes_its_hash(tmp_path, open_moto, monkeypatch):
    import hashlib

    for key, value in open_moto.env().items():
        monkeypatch.setenv(key, value)
    bucket = open_moto.bucket(f"put-{secrets.token_hex(4)}")
    blobs = WorkspaceSettings.resolve(str(tmp_path / "ws"), None, f"s3://{bucket}/arts").blob_store()
    data, other = b"the model " + secrets.token_bytes(64), b"not what was announced"
    sha = hashlib.sha256(data).hexdigest()

    signed = blobs.signed_put(sha, 60)
    assert signed is not None
    staged, url, headers = signed
    assert not staged.startswith("blobs/") and "Credential" in url and open_moto.secret not in url
    assert _put(url, headers, data) == 200
    assert blobs.adopt(staged, sha)
    assert blobs.read_bytes(sha) == data

    lie = hashlib.sha256(other + b"!").hexdigest()  # a node announcing a hash its upload does not have
    staged, url, headers = blobs.signed_put(lie, 60)
    _put(url, headers, other)  # S3 refuses the body for the signed checksum; moto's server takes it
    assert not blobs.adopt(staged, lie)
    assert not blobs.exists(lie)
    keys = [o["Key"] for o in open_moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [f"arts/blobs/sha256/{sha[:2]}/{sha[2:]}"]  # nothing staged is left
