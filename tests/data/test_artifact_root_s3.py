"""The artifact root on object storage, end to end against a real S3-compatible server (moto's, on
loopback): with ``MLTRAIN_ARTIFACT_ROOT=s3://bucket/prefix`` the bundled iris job runs on local compute,
its model is registered, deployed and scored over HTTP; the snapshot, the run's artifacts and the model
are blobs in the bucket, the local folder holds only their cache, and the credentials reach no file of
the workspace and no command's output."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "deploy"))
from deploytools import model_truth  # noqa: E402
from support import score  # noqa: E402


def blob_names(keys: list[str], prefix: str) -> set[str]:
    parts = [k.removeprefix(f"{prefix}/blobs/sha256/").split("/") for k in keys]
    return {a + b for a, b in parts}


def test_run_register_deploy_and_score_with_the_artifact_root_on_s3(s3, mltrain, cli, project: Path, monkeypatch):
    monkeypatch.setenv("MLTRAIN_ARTIFACT_ROOT", s3.url("team/arts"))
    outputs: list[str] = []
    proc = mltrain("+deploy=local")
    outputs.append(proc.stdout + proc.stderr)
    try:
        assert proc.returncode == 0, proc.output
        uri = re.search(r"endpoint: sklearn-iris at (http://127\.0\.0\.1:\d+)", proc.stdout).group(1)
        key = re.search(r"primary key: (\S+)", proc.stdout).group(1)
        truth = model_truth(project, "sklearn-iris:1")  # `models download` reads the model from the bucket
        answer = score(uri, {"data": truth["rows"]}, key=key)
        assert answer.status == 200, answer.body
        assert answer.json()["predictions"] == truth["predictions"]

        keys = s3.keys()
        assert keys and all(k.startswith("team/arts/blobs/sha256/") for k in keys), keys
        in_bucket = blob_names(keys, "team/arts")
        for args in (["runs", "list"], ["models", "show", "sklearn-iris:1"], ["endpoints", "list"]):
            shown = cli(*args, "--json")
            assert shown.returncode == 0, shown.output
            outputs.append(shown.stdout + shown.stderr)
        run = json.loads(outputs[1])[0]
        model = json.loads(outputs[2])
        assert run["status"] == "Completed" and run["snapshot_id"] in in_bucket
        assert {f["sha256"] for f in model["files"]} <= in_bucket
        artifacts = json.loads(cli("runs", "show", run["id"], "--json").stdout)["artifacts"]
        assert artifacts and {a["sha256"] for a in artifacts} <= in_bucket
        assert not (project / ".mltrain" / "artifacts").exists()  # only the cache holds copies
        assert (project / ".mltrain" / "blob-cache" / "blobs" / "sha256").is_dir()

        printed = mltrain("--cfg", "job", "--resolve")
        assert printed.returncode == 0 and "s3://" in printed.stdout, printed.output
        outputs.append(printed.stdout + printed.stderr)
    finally:
        outputs.append(cli("endpoints", "delete", "sklearn-iris", "--missing-ok").stdout)
    for secret in (s3.server.secret, s3.server.key_id):
        assert not any(secret in text for text in outputs)
        leaked = [p for p in (project / ".mltrain").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert leaked == []


def test_a_run_with_refused_credentials_records_nothing(s3, mltrain, cli, monkeypatch):
    monkeypatch.setenv("MLTRAIN_ARTIFACT_ROOT", s3.url("team/arts"))
    proc = mltrain(env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert proc.returncode != 0
    assert "artifact root s3://" in proc.stderr and "refused access" in proc.stderr, proc.output
    assert "not-the-secret" not in proc.stdout + proc.stderr
    listed = cli("runs", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.output
    assert s3.keys() == []
