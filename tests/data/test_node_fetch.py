"""What a Ray node does with a job's inputs (the node-side code, run here in process): it fetches each file
of an s3:// version itself by the signed URL the driver handed it (no credentials on the node), checks
it against the recorded ETag, lays the input out, moves 0 bytes the second time, and refuses a file
that changed at its source, naming it, leaving nothing in its cache.

moto's server answers a presigned URL with a 500 while it enforces signing, so these tests use one of
their own that does not (started and stopped by PID like the session's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import S3

from mltrain.data.configs import InputConfig
from mltrain.remote import inputs as node_io
from mltrain.runs.inputs import resolve_input
from mltrain.workspace import Workspace, WorkspaceSettings


@pytest.fixture
def s3(open_moto, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A bucket on the server that answers presigned URLs; this process reaches it."""
    env = open_moto.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return S3(open_moto, open_moto.bucket(f"n-{os.urandom(4).hex()}"), env)


def staged_for_node(project: Path, s3, cli_json) -> tuple[Path, dict]:
    s3.put("raw/a.csv", b"a,b\n1,2\n")
    s3.put("raw/sub/b.txt", os.urandom(3000))
    cli_json("data", "create", "raw", s3.url("raw"))
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    spec = resolve_input(ws, "d", InputConfig(path="data:raw", mode="download")).spec
    hints = {f.key: spec.source.node_hint(f) for f in spec.files}  # what the Ray driver writes
    assert all(h and h["url"].startswith("http://127.0.0.1:") and h["etag"] for h in hints.values())
    stage = project / "stage"
    node_io.write_manifests(str(stage), [spec.manifest()], ["out"], hints)
    return stage, spec.manifest()


def test_a_node_fetches_by_signed_url_and_a_second_run_moves_nothing(s3, cli_json, project, monkeypatch, tmp_path):
    stage, manifest = staged_for_node(project, s3, cli_json)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)  # the node has no credentials: the URL is enough
    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "node-cache"))
    lines: list[str] = []
    run1 = tmp_path / "run1"
    paths = node_io.deliver_on_node(str(stage), str(run1), "node-1", lines.append)
    assert (Path(paths["inputs.d"]) / "a.csv").read_bytes() == b"a,b\n1,2\n"
    assert Path(paths["outputs.out"]).is_dir()
    assert "moved into node-1's cache (2 files)" in lines[-1]
    argv, env = node_io.resolve_job(["train.py", "--data", "${inputs.d}"], {"X": "${outputs.out}"}, paths)
    assert argv[2] == paths["inputs.d"] and env["X"] == paths["outputs.out"]
    assert env["MLTRAIN_INPUT_d"] == paths["inputs.d"]

    node_io.deliver_on_node(str(stage), str(tmp_path / "run2"), "node-1", lines.append)
    assert lines[-1] == "input d: 0 bytes moved (all in node-1's cache)"


def test_a_node_refuses_a_file_that_changed_at_its_source(s3, cli_json, project, monkeypatch, tmp_path):
    stage, _manifest = staged_for_node(project, s3, cli_json)
    s3.put("raw/a.csv", b"changed")
    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "node-cache"))
    with pytest.raises(node_io.InputError, match="a.csv changed at its source"):
        node_io.deliver_on_node(str(stage), str(tmp_path / "run"), "node-1", lambda line: None)
    cached = [p.name for p in (tmp_path / "node-cache").rglob("*") if p.is_file()]
    assert all(not name.startswith(".incoming-") for name in cached) and len(cached) <= 1  # b.txt at most
