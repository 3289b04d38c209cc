"""A Ray job's snapshot with the artifact root on object storage (moto's S3 server on loopback; the
driver's staging and the node-side code, run here in process): the staged working_dir holds only the
snapshot's list with a signed GET URL per blob, the node fetches the blobs into its cache itself and
lays the run folder out; a blob in the bucket that is not what its name says is refused (nothing takes
its name in the node's cache) and the job then carries the snapshot, staged from the driver's checked
copy. (moto's server answers presigned requests with a 500 while it enforces signing: one that does not.)"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from support import write_script

from mltrain.compute.base import RunSpec
from mltrain.compute.ray.runtime import Stage
from mltrain.remote import inputs as node_io
from mltrain.remote.ray_job import SnapshotUnreachable, make_run_dir
from mltrain.workspace import Workspace, WorkspaceSettings


@pytest.fixture
def bucket_ws(open_moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Workspace, str]:
    for key, value in open_moto.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "node-cache"))  # the node's cache
    bucket = open_moto.bucket(f"s-{os.urandom(4).hex()}")
    return Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws"), None, f"s3://{bucket}/arts")), bucket


def _spec(ws: Workspace, source: Path) -> RunSpec:
    snap = ws.snapshots.take(source)
    run_id = f"20260101_000000_{secrets.token_hex(3)}"
    return RunSpec(run_id, "t", ws.run_dir(run_id), snap.id, "job.py")


def test_the_node_fetches_the_snapshot_itself(bucket_ws, tmp_path):
    ws, _bucket = bucket_ws
    write_script(tmp_path / "src", "job.py", f"print('hello {secrets.token_hex(8)}')\n")
    write_script(tmp_path / "src" / "pkg", "data.py", "ROWS = 3\n")
    spec, stage = _spec(ws, tmp_path / "src"), Stage(3600)
    try:
        stage.upload(ws, spec)
        staged = stage.folder(spec, light=True)
        assert stage.light(spec)
        assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()) == [
            node_io.SNAPSHOT_FILE
        ]  # nothing of the snapshot goes with the job
        said: list[str] = []
        run_dir = Path(make_run_dir(str(staged), spec.run_id, "t", str(tmp_path), said.append))
        assert (run_dir / "job.py").read_text() == (tmp_path / "src" / "job.py").read_text()
        assert (run_dir / "pkg" / "data.py").read_text() == "ROWS = 3\n"
        assert not (run_dir / node_io.SNAPSHOT_FILE).exists()
        assert said == [f"snapshot: {sum(f.stat().st_size for f in (tmp_path / 'src').rglob('*.py'))} bytes "
                        "fetched from the artifact root into this node's cache (2 files)"]  # fmt: skip
        said.clear()
        make_run_dir(str(staged), spec.run_id, "t", str(tmp_path), said.append)
        assert said == ["snapshot: 0 bytes fetched from the artifact root into this node's cache (0 files)"]
    finally:
        stage.close()


def test_a_blob_that_is_not_its_name_is_refused_and_the_snapshot_is_carried(bucket_ws, open_moto, tmp_path):
    ws, bucket = bucket_ws
    write_script(tmp_path / "src", "job.py", f"print('real {secrets.token_hex(8)}')\n")
    spec, stage = _spec(ws, tmp_path / "src"), Stage(3600)
    sha = ws.snapshots.get(spec.snapshot_id).files[0].sha256
    open_moto.client().put_object(Bucket=bucket, Key=f"arts/blobs/sha256/{sha[:2]}/{sha[2:]}", Body=b"print(1)\n")
    try:
        stage.upload(ws, spec)
        with pytest.raises(SnapshotUnreachable, match="job.py: the content is not the one recorded"):
            make_run_dir(str(stage.folder(spec, light=True)), spec.run_id, "t", str(tmp_path))
        assert not (tmp_path / "node-cache" / "data" / "blobs" / sha).exists()  # nothing took its name
        stage.carried(spec)  # what the driver does when the node says so: the next job carries the snapshot
        carried = stage.folder(spec, light=True)
        assert not stage.light(spec) and (carried / "job.py").read_text() == (tmp_path / "src" / "job.py").read_text()
    finally:
        stage.close()


@contextmanager
def _stage(ws: Workspace, source: Path, url_expires_s: int) -> Iterator[tuple[RunSpec, Stage]]:
    """A run of a fresh ``source/job.py`` and a Stage whose URLs live ``url_expires_s`` (closed after)."""
    write_script(source, "job.py", f"print('{secrets.token_hex(8)}')\n")
    stage = Stage(url_expires_s)
    try:
        yield _spec(ws, source), stage
    finally:
        stage.close()


def test_the_snapshots_signed_urls_live_as_long_as_the_target_says(bucket_ws, tmp_path):
    ws, _bucket = bucket_ws
    with _stage(ws, tmp_path / "src", 900) as (spec, stage):
        stage.upload(ws, spec)
        listed = json.loads((stage.folder(spec, light=True) / node_io.SNAPSHOT_FILE).read_text())
        [hint] = listed["hints"].values()
        assert parse_qs(urlsplit(hint["url"]).query)["X-Amz-Expires"] == ["900"]


def test_a_later_run_gets_a_list_signed_again_once_half_the_lifetime_passed(bucket_ws, tmp_path, monkeypatch):
    import mltrain.compute.ray.runtime as runtime

    ws, _bucket = bucket_ws
    now = time.time()
    with _stage(ws, tmp_path / "src", 600) as (first, stage):
        second = RunSpec(f"{first.run_id}x", "t", first.run_dir, first.snapshot_id, "job.py")  # a sweep's next trial
        third = RunSpec(f"{first.run_id}y", "t", first.run_dir, first.snapshot_id, "job.py")
        monkeypatch.setattr(runtime, "time", SimpleNamespace(time=lambda: now))  # this module's clock only
        assert stage.upload(ws, first) and not stage.upload(ws, second)  # staged once, shared
        assert stage.folder(second, light=True) == stage.folder(first, light=True)
        monkeypatch.setattr(runtime, "time", SimpleNamespace(time=lambda: now + 301))  # half of 600 s later
        assert stage.upload(ws, third)  # signed again: a later run never gets URLs about to expire
        assert stage.folder(third, light=True) != stage.folder(first, light=True)
        assert stage.folder(first, light=True).is_dir()  # the earlier runs' list stays theirs
