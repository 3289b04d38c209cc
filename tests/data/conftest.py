"""Fixtures of the data tests: an S3-compatible server (moto's, started once per session on a free
loopback port with request signing enforced, stopped by PID) and a fresh bucket per test."""

from __future__ import annotations

import io
import json
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from moto_s3 import MotoS3, running_moto, start_moto, stop_moto  # noqa: E402
from support import Result  # noqa: E402


@pytest.fixture
def mt(project: Path) -> Callable[..., Result]:
    """``mt(*args)``: the ``mltrain`` command's ``main`` run in this process, in ``project`` (the same
    code as the console script, without a new interpreter per call; ``cli`` runs a real process)."""
    from mltrain.cli.main import main

    def call(*args: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse errors
                code = int(exc.code or 0)
        return Result(code, out.getvalue(), err.getvalue())

    return call


@pytest.fixture
def mt_json(mt: Callable[..., Result]) -> Callable[..., Any]:
    """``mt_json(*args)``: the parsed ``--json`` output of an in-process command (which must succeed)."""

    def call(*args: str) -> Any:
        result = mt(*args, "--json")
        assert result.returncode == 0, result.output
        return json.loads(result.stdout)

    return call


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_moto(server)


@dataclass
class S3:
    server: MotoS3
    bucket: str
    env: dict[str, str]  # what a process needs to reach the bucket (credentials from the environment)

    def url(self, path: str = "") -> str:
        return f"s3://{self.bucket}/{path}".rstrip("/")

    def put(self, key: str, data: bytes) -> None:
        self.server.client().put_object(Bucket=self.bucket, Key=key, Body=data)

    def delete(self, key: str) -> None:
        self.server.client().delete_object(Bucket=self.bucket, Key=key)

    def keys(self) -> list[str]:
        found = self.server.client().list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return sorted(o["Key"] for o in found)


@pytest.fixture(scope="module")
def open_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """A server of the module's own that does not enforce signing: moto's server answers a presigned
    request with a 500 while it does. Stopped by its PID."""
    with running_moto(tmp_path_factory.mktemp("moto-open"), enforce_auth=False) as server:
        yield server


@pytest.fixture
def s3(moto: MotoS3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A new bucket; this process's environment reaches it (as a user's shell would)."""
    bucket = moto.bucket(f"t-{secrets.token_hex(6)}")
    env = moto.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return S3(moto, bucket, env)


@pytest.fixture
def s3_datastore(s3: S3, project: Path) -> str:
    """A project datastore ``teams3`` (conf/datastore/teams3.yaml) storing data in the test bucket."""
    conf = project / "conf" / "datastore"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "teams3.yaml").write_text(
        f"defaults:\n  - s3_schema\n_target_: mltrain.workspace.datastores.objects.S3Datastore\n"
        f"url: {s3.url('store')}\nendpoint_url: {s3.server.endpoint}\nretries: 0\nconnect_timeout_s: 2\n"
    )
    return "teams3"
