"""An S3-compatible server for tests and benchmarks: moto's standalone server (``moto_server`` from
``moto[server]``) on a free loopback port, with request signing enforced.

``start_moto()`` starts it with ``INITIAL_NO_AUTH_ACTION_COUNT`` set, so the first IAM calls (creating
a user, its access key and an allow-all policy) pass unsigned and every later request needs that key:
a wrong key or secret is refused as AWS refuses it. ``stop_moto()`` stops it by its PID.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

UNSIGNED_SETUP_CALLS = 3  # create_user, create_access_key, put_user_policy


@dataclass
class MotoS3:
    endpoint: str  # http://127.0.0.1:PORT
    key_id: str
    secret: str
    proc: subprocess.Popen[bytes]
    log: Path
    region: str = "us-east-1"
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="moto-home-")))

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a process that reaches the server with the test key (no AWS config files read)."""
        return {
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CONFIG_FILE": str(self.home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "credentials"),
            **extra,
        }

    def client(self):  # noqa: ANN201 - boto3 is a test dependency only
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` (3+ characters) if needed; return it."""
        client = self.client()
        if name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=name)
        return name


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not listen on 127.0.0.1:{port} within {timeout}s:\n{log.read_text()}")


def start_moto(workdir: Path, enforce_auth: bool = True) -> MotoS3:
    """Start ``moto_server`` on 127.0.0.1 with signing enforced (unless not ``enforce_auth``: moto's server
    then also answers presigned URLs, which it fails with a 500 when it enforces signing); return it with
    a valid key."""
    import boto3

    port = free_port()
    log = workdir / "moto_server.log"
    binary = Path(sys.executable).with_name("moto_server")
    env = {k: v for k, v in os.environ.items() if k != "INITIAL_NO_AUTH_ACTION_COUNT"}
    if enforce_auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(UNSIGNED_SETUP_CALLS)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(port, proc, log)
        if not enforce_auth:
            return MotoS3(endpoint, "open-key", "open-secret", proc, log)
        iam = boto3.client(
            "iam", endpoint_url=endpoint, aws_access_key_id="setup", aws_secret_access_key="setup",
            region_name="us-east-1",
        )  # fmt: skip
        iam.create_user(UserName="mltrain-test")
        key = iam.create_access_key(UserName="mltrain-test")["AccessKey"]
        allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="mltrain-test", PolicyName="all", PolicyDocument=json.dumps(allow_all))
    except BaseException:
        stop_moto_proc(proc)
        raise
    return MotoS3(endpoint, key["AccessKeyId"], key["SecretAccessKey"], proc, log)


def stop_moto_proc(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def stop_moto(server: MotoS3) -> None:
    stop_moto_proc(server.proc)


@contextmanager
def running_moto(workdir: Path, enforce_auth: bool = True) -> Iterator[MotoS3]:
    """A server (:func:`start_moto`) for the ``with`` block, stopped by its PID after it."""
    server = start_moto(workdir, enforce_auth)
    try:
        yield server
    finally:
        stop_moto(server)
