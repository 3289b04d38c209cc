"""A node uploading a run's outputs into an object-store artifact root itself (the node-side code, run here
in process, against moto's S3 server on loopback): by the presigned POST policy the driver hands a Ray
job (the files' hashes are not known then), each upload staged under the run's prefix and made a blob
only when the store computes the hash the node announced; an upload whose content is not its announced
hash is refused and nothing takes its name.

moto's server answers presigned requests with a 500 while it enforces signing, so these tests use one of
their own that does not (started and stopped by PID)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mltrain.compute.node_outputs import OutputsRefused, adopt_announced, adopt_uploads
from mltrain.remote.node_outputs import post_outputs
from mltrain.workspace import WorkspaceSettings
from mltrain.workspace.blobs import BlobStore


@pytest.fixture
def bucket_blobs(open_moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[BlobStore, str]:
    for key, value in open_moto.env().items():
        monkeypatch.setenv(key, value)
    bucket = open_moto.bucket(f"o-{os.urandom(4).hex()}")
    return WorkspaceSettings.resolve(str(tmp_path / "ws"), None, f"s3://{bucket}/arts").blob_store(), bucket


def _run_folder(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _policy(blobs: BlobStore, max_bytes: int = 1 << 20) -> tuple[str, dict]:
    signed = blobs.signed_post("20260101_000000_abcdef", 600, max_bytes)
    assert signed is not None
    staged, url, fields, key = signed
    return staged, {"url": url, "fields": fields, "key": key}


def test_a_node_posts_its_outputs_and_the_store_checks_each_before_it_becomes_a_blob(bucket_blobs, open_moto, tmp_path):
    blobs, bucket = bucket_blobs
    files = {"outputs/model.bin": os.urandom(300_000), "logs/note.txt": b"trained\n", "other/x": b"not an output"}
    run_dir = _run_folder(tmp_path / "run", files)
    staged, policy = _policy(blobs)
    assert staged.startswith("incoming/20260101_000000_abcdef/") and open_moto.secret not in str(policy)

    sent = post_outputs(str(run_dir), policy, 10 << 20)
    assert sorted(e[0] for e in sent) == ["logs/note.txt", "outputs/model.bin"]  # outputs/ and logs/ only
    stored = adopt_uploads(blobs, {rel: (sha, size, f"{staged}{n}") for rel, sha, size, n in sent}, "node", print)
    for rel, (sha, size) in stored.items():
        assert blobs.read_bytes(sha) == files[rel] and size == len(files[rel])
    left = open_moto.client().list_objects_v2(Bucket=bucket, Prefix="arts/incoming/").get("KeyCount", 0)
    assert left == 0  # each staged upload went once checked


def test_an_upload_that_is_not_its_announced_hash_is_refused_and_nothing_takes_its_name(bucket_blobs, tmp_path):
    blobs, _bucket = bucket_blobs
    run_dir = _run_folder(tmp_path / "run", {"outputs/model.bin": b"the real model"})
    staged, policy = _policy(blobs)
    [(rel, _sha, size, n)] = post_outputs(str(run_dir), policy, 10 << 20)
    claimed = hashlib.sha256(b"another model").hexdigest()  # a node lying about what it uploaded
    said: list[str] = []
    assert adopt_uploads(blobs, {rel: (claimed, size, f"{staged}{n}")}, "node-x", said.append) == {}
    assert not blobs.exists(claimed)
    assert "node-x uploaded outputs/model.bin with another content than its sha256" in said[0]


def test_what_a_ray_node_announces_is_checked_before_anything_is_stored(bucket_blobs, tmp_path):
    blobs, _bucket = bucket_blobs
    run_dir = _run_folder(tmp_path / "run", {"outputs/model.bin": b"the real model", "logs/a.txt": b"log"})
    staged, policy = _policy(blobs)
    sent = post_outputs(str(run_dir), policy, 10 << 20)
    model = next(e for e in sent if e[0] == "outputs/model.bin")
    lie = [model[0], hashlib.sha256(b"x").hexdigest(), model[2], model[3]]
    for hostile, match in [
        ([[*model[:3], -1]], "not numbered files"),
        ([model, [*model[:3], model[3]]], "not numbered files"),  # two claims on one upload
        ([["../../etc/passwd", *model[1:]]], "not a file under outputs/ or logs/"),
        ([["outputs/model.bin", model[1], 1 << 40, model[3]]], "max_output_mb"),
    ]:
        with pytest.raises(OutputsRefused, match=match):
            adopt_announced(blobs, staged, hostile, "node-x", 100, print)
    said: list[str] = []
    stored = adopt_announced(blobs, staged, [lie, *[e for e in sent if e is not model]], "node-x", 100, said.append)
    assert list(stored) == ["logs/a.txt"] and not blobs.exists(lie[1])  # the lie took no name; the rest is kept
    assert "another content than its sha256" in said[0]


def test_outputs_over_the_limit_are_not_uploaded(bucket_blobs, tmp_path):
    blobs, _bucket = bucket_blobs
    run_dir = _run_folder(tmp_path / "run", {"outputs/a": b"x" * 1000, "outputs/b": b"y" * 1000})
    _staged, policy = _policy(blobs)
    assert post_outputs(str(run_dir), policy, 1500) == []  # they come back through the driver, refused there


def _archive_names(worker, run: str, size: int) -> set[str]:
    import io
    import tarfile

    data = b""
    while len(data) < size:
        data += worker.archive(run, len(data))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


WRITES_OUTPUTS = (
    "import os\nos.makedirs('outputs')\nos.makedirs('logs')\n"
    "open('outputs/model.bin', 'wb').write(b'm' * 1000)\nopen('logs/own.log', 'w').write('line')\n"
)


@contextmanager
def ended_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: dict) -> Iterator[tuple[Any, dict]]:
    """A Ray warm worker (run here in process, as tests/compute/test_ray_warm_worker.py does) that ran trial
    r1 of a script writing outputs/model.bin and logs/own.log, started with ``policy``: it and the trial's
    outputs as its last poll gave them (shut down afterwards)."""
    from mltrain.remote.ray_warm import WarmWorker

    source = tmp_path / "working_dir"
    source.mkdir()
    (source / "job.py").write_text(WRITES_OUTPUTS)
    monkeypatch.chdir(source)
    worker = WarmWorker(["json"], grace_s=1.0, max_output_mb=10)
    try:
        worker.start("r1", "exp", "job.py", [], {"MLTRAIN_RUN_ID": "r1"}, policy)
        deadline = time.monotonic() + 30  # a safeguard, not a measure
        while (answer := worker.poll("r1", [0, 0, 0], 0.5)) and answer["exit"] is None:
            assert time.monotonic() < deadline
        yield worker, answer["outputs"]
    finally:
        worker.shutdown()


def test_a_warm_worker_posts_a_trials_outputs_by_its_policy_and_repacks_them_for_a_driver_that_cannot_adopt(
    bucket_blobs, tmp_path, monkeypatch
):
    """The trial's outputs/ and logs/ go into the store by the policy it was started with, only the rest is
    archived; a driver that did not sign that policy (another process, attached) gets everything through
    the worker."""
    blobs, _bucket = bucket_blobs
    staged, policy = _policy(blobs)
    with ended_trial(tmp_path, monkeypatch, policy) as (worker, outputs):
        sent = outputs["stored"]
        assert sorted(e[0] for e in sent) == ["logs/own.log", "outputs/model.bin"] and outputs["said"] == []
        assert not {"logs/own.log", "outputs/model.bin"} & _archive_names(worker, "r1", outputs["size"])
        stored = adopt_announced(blobs, staged, sent, "node", 10, print)  # what the driver that signed it does
        assert blobs.read_bytes(stored["outputs/model.bin"][0]) == b"m" * 1000

        again = worker.repack("r1")  # what a driver that did not sign it asks for
        assert again["stored"] == [] and worker.poll("r1", [0, 0, 0], 0)["outputs"] == again
        assert {"logs/own.log", "outputs/model.bin"} <= _archive_names(worker, "r1", again["size"])


def test_outputs_the_store_does_not_take_come_through_the_warm_worker_and_the_node_says_why(
    bucket_blobs, tmp_path, monkeypatch
):
    """The store refuses the node's uploads (here its policy names a bucket that is gone; an expired or
    revoked policy is refused the same way): every file comes in the trial's archive, nothing is
    announced, and the node says how many files the store did not take and why (the driver logs it)."""
    blobs, bucket = bucket_blobs
    _staged, policy = _policy(blobs)
    gone = {**policy, "url": policy["url"].replace(bucket, f"gone-{bucket}")}
    with ended_trial(tmp_path, monkeypatch, gone) as (worker, outputs):
        assert outputs["stored"] == []
        assert {"logs/own.log", "outputs/model.bin"} <= _archive_names(worker, "r1", outputs["size"])
        [said] = outputs["said"]
        assert said.startswith("outputs: the artifact root did not take 2 of 2 files this node uploaded (")
        assert "HTTP 404" in said and said.endswith("they come through the driver"), said


def test_a_staging_prefix_read_from_a_record_is_taken_only_when_the_runs_policy_could_have_made_it(bucket_blobs):
    from mltrain.compute.base import RunSpec
    from mltrain.compute.ray.jobs import staging_of

    blobs, _bucket = bucket_blobs
    run = "20260101_000000_abcdef"
    staged, _policy_of = _policy(blobs)
    assert blobs.owns_staging(run, staged)
    other = blobs.signed_post("20260101_000000_fedcba", 600, 1 << 20)[0]  # another run's
    dotted = f"incoming/{run}/../{other.removeprefix('incoming/')}"
    bad = [other, "../", dotted, f"{staged}../", staged[:-1], f"{staged}x/", "incoming/", f"incoming/{run}/"]
    for hostile in [*bad, "blobs/sha256/", staged.upper(), None, 42]:
        assert not blobs.owns_staging(run, hostile), hostile
    spec = RunSpec(run, "t", Path("."), "0" * 64, "job.py")
    assert staging_of({"staging": staged}, spec, blobs) == ((blobs, staged), None)
    direct, refused = staging_of({"staging": other}, spec, blobs)
    assert direct is None and f"names the staging prefix {other!r}, which is not one of this run's" in refused


def test_what_a_node_left_under_its_staging_prefix_is_removed_and_nothing_else(bucket_blobs, open_moto, tmp_path):
    blobs, bucket = bucket_blobs
    run_dir = _run_folder(tmp_path / "run", {"outputs/model.bin": b"never announced", "logs/a.txt": b"log"})
    staged, policy = _policy(blobs)
    assert len(post_outputs(str(run_dir), policy, 10 << 20)) == 2  # posted, never adopted
    other = blobs.signed_post("20260101_000000_fedcba", 600, 1 << 20)[0]
    s3 = open_moto.client()
    s3.put_object(Bucket=bucket, Key=f"arts/{other}0", Body=b"another run's upload")
    s3.put_object(Bucket=bucket, Key="arts/incoming/loose", Body=b"not of a run")
    assert blobs.discard_staging(staged) == 2
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="arts/").get("Contents", [])]
    assert sorted(left) == sorted([f"arts/{other}0", "arts/incoming/loose"])
    for bad in ["incoming/", "", "blobs/sha256/", f"{staged}../", "../"]:
        with pytest.raises(ValueError, match="bad staging prefix"):
            blobs.discard_staging(bad)
