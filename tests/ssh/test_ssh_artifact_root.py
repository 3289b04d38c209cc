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


def _bucket_workspace(tmp_path: Path, moto, monkeypatch, name: str) -> tuple[Workspace, str]:
    """A workspace whose artifact root is a new bucket of ``moto`` (this process reaches it), and the bucket."""
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    bucket = moto.bucket(f"{name}-{secrets.token_hex(4)}")
    return Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws"), None, f"s3://{bucket}/arts")), bucket


def test_the_host_fetches_snapshot_blobs_from_the_bucket_itself(tmp_path, ssh_pool, open_moto, monkeypatch):
    ws, bucket = _bucket_workspace(tmp_path, open_moto, monkeypatch, "ssh")
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


WRITER = """
import os
os.makedirs("outputs/sub", exist_ok=True)
os.makedirs("logs", exist_ok=True)
open("outputs/sub/model.bin", "wb").write(bytes(range(256)) * 800)
open("logs/note.txt", "w").write("written by the job\\n")
os.symlink("/etc/passwd", "outputs/leak")  # a link out of the run folder: never stored
print("wrote")
"""


def _run_and_record(ws, target, source: Path, env, built) -> tuple[str, list]:
    """One run of ``source`` on ``target``, its artifacts recorded as a run's are: (run id, artifacts)."""
    from conformance import RecordingSink

    from mltrain.compute.base import RunSpec
    from mltrain.environments.shim import ensure_shim
    from mltrain.runs.finalize import collect_artifacts
    from mltrain.workspace.runs import new_run_id

    snap = ws.snapshots.take(source)
    run_id = new_run_id()
    ws.runs.create(run_id, "direct")
    run_dir = ws.run_dir(run_id)
    run_dir.mkdir(parents=True)
    spec = RunSpec(run_id, "direct", run_dir, snap.id, "job.py", [], {}, ensure_shim())
    target.upload(ws, spec)
    sink = RecordingSink()
    handle = target.start(spec, built, sink)
    assert handle.wait(120) == 0, sink.text()
    target.collect(spec, handle)
    target.cleanup(spec, handle)
    return run_id, collect_artifacts(ws, run_id, run_dir, None, handle.stored)


@pytest.fixture
def direct_setup(tmp_path, ssh_pool, open_moto, monkeypatch):
    ws, _bucket = _bucket_workspace(tmp_path, open_moto, monkeypatch, "out")
    source, target = _two_files_and_a_new_host(tmp_path, ssh_pool, "s3-outs")
    write_script(source, "job.py", WRITER)
    try:
        yield ws, target, source, *_prepared(ws, target, tmp_path)
    finally:
        target.close()


MODEL = bytes(range(256)) * 800


def _artifact_bytes(ws, run_id: str, tmp_path: Path) -> dict[str, bytes]:
    from mltrain.workspace.run_files import download_artifacts

    dest = tmp_path / f"download-{run_id}"
    assert download_artifacts(ws, run_id, dest) == []
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def test_the_host_writes_the_run_outputs_into_the_bucket_itself(direct_setup, tmp_path):
    import hashlib

    ws, target, source, _env, built = direct_setup
    run_id, items = _run_and_record(ws, target, source, _env, built)
    assert target.stats["outputs_stored"] == 2  # outputs/sub/model.bin and logs/note.txt
    assert target.stats["bytes_received"] < 5_000  # only the (empty) uploads and metrics archive came here
    assert not (ws.run_dir(run_id) / "outputs" / "sub" / "model.bin").exists()
    sha = hashlib.sha256(MODEL).hexdigest()
    assert ("outputs/sub/model.bin", sha, len(MODEL)) in items
    assert ws.blobs.exists(sha)
    got = _artifact_bytes(ws, run_id, tmp_path)
    assert got["outputs/sub/model.bin"] == MODEL and got["logs/note.txt"] == b"written by the job\n"
    assert "outputs/leak" not in got


def test_a_host_that_cannot_reach_the_bucket_sends_its_outputs_through_the_driver(direct_setup, tmp_path, monkeypatch):
    ws, target, source, _env, built = direct_setup
    signed_put = ws.blobs.signed_put

    def unreachable(sha: str, expires_s: int):
        staged, url, headers = signed_put(sha, expires_s)
        return staged, "http://127.0.0.1:9/" + url.split("/", 3)[3], headers  # nothing listens there

    monkeypatch.setattr(ws.blobs, "signed_put", unreachable)
    run_id, _items = _run_and_record(ws, target, source, _env, built)
    assert target.stats["outputs_stored"] == 0
    assert target.stats["bytes_received"] > 1_000
    got = _artifact_bytes(ws, run_id, tmp_path)
    assert got["outputs/sub/model.bin"] == MODEL and got["logs/note.txt"] == b"written by the job\n"


def test_a_host_claiming_a_wrong_hash_is_refused(direct_setup, tmp_path, monkeypatch):
    import hashlib

    from mltrain.compute.ssh.conn import Remote

    ws, target, source, _env, built = direct_setup
    claimed = hashlib.sha256(b"what the host says the model is").hexdigest()
    agent = Remote.agent

    def lying(self, *args, **kwargs):  # the host's answer to `outputs`, as a hostile helper would give it
        answer = agent(self, *args, **kwargs)
        if args[0] == "outputs":
            answer = [[p, claimed if p.endswith("model.bin") else s, n] for p, s, n in answer]
        return answer

    monkeypatch.setattr(Remote, "agent", lying)
    run_id, items = _run_and_record(ws, target, source, _env, built)
    assert not ws.blobs.exists(claimed)  # nothing is stored under the false hash
    assert target.stats["outputs_stored"] == 1  # the log went; the model came through the driver
    assert ("outputs/sub/model.bin", hashlib.sha256(MODEL).hexdigest(), len(MODEL)) in items
    assert _artifact_bytes(ws, run_id, tmp_path)["outputs/sub/model.bin"] == MODEL


@pytest.mark.parametrize(
    "entry",
    [
        ["outputs/../../etc/passwd", "0" * 64, 1],
        ["/etc/passwd", "0" * 64, 1],
        [".mltrain/run.json", "0" * 64, 1],
        ["outputs/a", "not-a-hash", 1],
        ["outputs/a", "0" * 64, -1],
        "outputs/a",
    ],
)
def test_a_hostile_list_of_outputs_is_refused_whole(entry):
    from mltrain.compute.node_outputs import OutputsRefused, checked_listing

    with pytest.raises(OutputsRefused, match="outside|not a file"):
        checked_listing([["outputs/ok", "1" * 64, 3], entry], "host-x", 10)


def test_outputs_over_max_output_mb_are_refused():
    from mltrain.compute.node_outputs import OutputsRefused, checked_listing

    with pytest.raises(OutputsRefused, match="max_output_mb"):
        checked_listing([["outputs/a", "1" * 64, 600_000], ["outputs/b", "2" * 64, 600_000]], "host-x", 1)


def test_outputs_the_store_cannot_check_come_through_the_driver(direct_setup, tmp_path, monkeypatch):
    from mltrain.errors import DataError

    ws, target, source, _env, built = direct_setup
    adopt = ws.blobs.adopt

    def failing(staged: str, sha: str) -> bool:  # the store fails after the copy, as a lost answer would
        adopt(staged, sha)
        raise DataError("copy on s3://... failed: InternalError")

    monkeypatch.setattr(ws.blobs, "adopt", failing)
    run_id, _items = _run_and_record(ws, target, source, _env, built)
    assert target.stats["outputs_stored"] == 0
    got = _artifact_bytes(ws, run_id, tmp_path)
    assert got["outputs/sub/model.bin"] == MODEL and got["logs/note.txt"] == b"written by the job\n"


def test_a_run_on_an_ssh_host_stores_its_outputs_in_the_bucket_and_downloads_them(
    project: Path, mltrain, cli, cli_json, ssh_pool, open_moto, monkeypatch, tmp_path
):
    for key, value in open_moto.env().items():
        monkeypatch.setenv(key, value)
    bucket = open_moto.bucket(f"ssh-{secrets.token_hex(4)}")
    monkeypatch.setenv("MLTRAIN_ARTIFACT_ROOT", f"s3://{bucket}/arts")
    write_script(project / "src", "write.py", WRITER)
    proc = mltrain(*ssh_pool.overrides(ssh_pool.hosts[0]), "job.source_dir=src", "job.script=write.py", "~register")
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "list")[0]
    assert not (Path(run["run_dir"]) / "outputs" / "sub" / "model.bin").exists()  # never came here
    keys = [o["Key"] for o in open_moto.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert not [k for k in keys if not k.startswith("arts/blobs/")]  # nothing left staged
    dest = tmp_path / "got"
    assert cli("runs", "download", run["id"], "--dest", str(dest)).returncode == 0
    assert (dest / "outputs" / "sub" / "model.bin").read_bytes() == MODEL
    assert (dest / "logs" / "note.txt").read_text() == "written by the job\n"
    assert (dest / "logs" / "std_log.txt").is_file()  # the driver's own log, beside the job's


FEATURES = """
import os, sys
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(os.path.join(out, "sub"), exist_ok=True)
open(os.path.join(out, "rows.csv"), "w").write("a,b\\n1,2\\n")
open(os.path.join(out, "sub", "big.txt"), "w").write("0123456789abcdef" * 12800)
"""


def test_a_named_output_written_by_the_host_into_the_bucket_becomes_a_version_and_feeds_the_next_job(
    project: Path, mltrain, cli_json, ssh_pool, open_moto, monkeypatch
):
    for key, value in open_moto.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLTRAIN_ARTIFACT_ROOT", f"s3://{open_moto.bucket(f'ssh-{secrets.token_hex(4)}')}/arts")
    write_script(project / "src", "feat.py", FEATURES)
    write_script(project / "src", "read.py", READER)
    host = ssh_pool.overrides(ssh_pool.hosts[0])
    made = mltrain(*host, "job.source_dir=src", "job.script=feat.py", "~register",
                   "+job.arguments.out=${outputs.feat}", "+job.outputs.feat.path=data:feat")  # fmt: skip
    assert made.returncode == 0, made.output
    assert "output: data:feat:1" in made.output
    run = cli_json("runs", "list")[0]
    assert not (Path(run["run_dir"]) / "outputs" / "data" / "feat" / "sub" / "big.txt").exists()  # never came here
    feat = cli_json("data", "show", "feat")
    assert feat["lineage"]["produced_by"]["run"] == run["id"]
    assert sorted((e["relpath"], e["size"]) for e in feat["manifest"]) == [("rows.csv", 8), ("sub/big.txt", 204800)]

    used = mltrain(*host, "job.source_dir=src", "job.script=read.py", "~register",
                   "+job.arguments.data=${inputs.f}", "+job.inputs.f.path=data:feat:1")  # fmt: skip
    assert used.returncode == 0, used.output
    assert "SEEN rows.csv a,b" in used.stdout and "SEEN sub/big.txt 0123456789abcdef0123" in used.stdout
