"""The OpenSSH client as the link to a host's helper (mltrain.compute.ssh.openssh): a run goes
through an ``ssh`` process of the driver (no paramiko connection at all when nothing is uploaded),
with the same exit code, output and files as over paramiko; a link that dies mid-run is made again and the
run completes; the host's real interpreter is remembered so the helper starts without its shim, and
forgotten when it is gone."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conformance import RecordingSink
from support import write_script

from mltrain.compute.base import RunSpec
from mltrain.compute.ssh import SSHCompute
from mltrain.compute.ssh.interpreters import FILE
from mltrain.config.schema import EnvironmentConfig
from mltrain.environments.resolve import resolve
from mltrain.environments.shim import ensure_shim
from mltrain.environments.spec import EnvSpec
from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.runs import new_run_id

SCRIPT = """
import os, sys, time
os.makedirs("outputs", exist_ok=True)
open("outputs/result.txt", "w").write("made on the host")
print("out line", flush=True)
print("err line", file=sys.stderr, flush=True)
time.sleep(float(sys.argv[1]))
print("after the pause", flush=True)
sys.exit(3)
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _start(tmp_path: Path, target: SSHCompute, pause: float) -> tuple[Any, RunSpec, RecordingSink, Any]:
    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    write_script(tmp_path / "src", "job.py", SCRIPT)
    node = {**dataclasses.asdict(EnvironmentConfig()), "name": "system", "build": "system"}
    env = resolve(EnvSpec.from_config(node, base_dir=tmp_path), ws)
    target.check()
    built = target.prepare(ws, env, lambda line: None)
    snap = ws.snapshots.take(tmp_path / "src")
    run_id = new_run_id()
    (ws.run_dir(run_id)).mkdir(parents=True)
    spec = RunSpec(run_id, "openssh", ws.run_dir(run_id), snap.id, "job.py", [str(pause)], {}, ensure_shim())
    target.upload(ws, spec)
    sink = RecordingSink()
    return target.start(spec, built, sink), spec, sink, ws


def _wait_for(sink: RecordingSink, marker: str) -> None:
    deadline = time.monotonic() + 60
    while marker not in sink.text():
        assert time.monotonic() < deadline, sink.text()
        time.sleep(0.05)


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_a_run_goes_through_the_chosen_client_with_the_same_exit_code_and_logs(
    tmp_path: Path, ssh_pool: Any, cache: Path, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    monkeypatch.setenv("MLTRAIN_SSH_CLIENT", client)
    target = SSHCompute(**ssh_pool.options(ssh_pool.hosts[0]))
    try:
        handle, spec, sink, _ws = _start(tmp_path, target, 0)
        assert handle.wait(120) == 3
        target.collect(spec, handle)
        target.cleanup(spec, handle)
        assert sink.text() == "out line\nafter the pause\n"
        assert sink.text("stderr") == "err line\n"
        assert (spec.run_dir / "outputs" / "result.txt").read_text() == "made on the host"
        remote = target.remotes[0]
        assert remote.via == client
        # over OpenSSH, a run whose files the host has makes no paramiko connection at all
        assert remote.connected_by_paramiko == (client == "paramiko")
    finally:
        target.close()


def test_an_ssh_client_killed_mid_run_is_replaced_and_the_run_completes(
    tmp_path: Path, ssh_pool: Any, cache: Path
) -> None:
    target = SSHCompute(**ssh_pool.options(ssh_pool.hosts[1]), keepalive_s=1.0)
    try:
        handle, spec, sink, _ws = _start(tmp_path, target, 3)
        _wait_for(sink, "out line")
        remote = target.remotes[0]
        assert remote.via == "openssh"
        os.kill(remote._link.proc.pid, signal.SIGKILL)  # the driver's ssh process dies; the job runs on
        assert handle.wait(120) == 3
        assert "after the pause" in sink.text()
        assert remote.via == "openssh" and remote.serving  # a new link
        target.collect(spec, handle)
        target.cleanup(spec, handle)
    finally:
        target.close()


def test_the_hosts_real_interpreter_is_remembered_and_forgotten_once_gone(
    tmp_path: Path, ssh_pool: Any, cache: Path
) -> None:
    """A host whose ``python`` is a shim: the first connection starts the helper through it, the next
    ones through the interpreter it found; a remembered interpreter that is gone is not used."""
    calls = tmp_path / "shim-calls"
    shim = write_script(tmp_path / "bin", "python-shim", f'#!/bin/sh\necho x >> {calls}\nexec python3 "$@"\n')
    shim.chmod(0o755)
    host = ssh_pool.hosts[0]
    label = f"root@{host.addr}:{host.port}"

    def connect() -> dict[str, Any]:
        target = SSHCompute(hosts=[host.entry(python=str(shim))], known_hosts=str(ssh_pool.known_hosts))
        try:
            target.check()
            return dict(target.remotes[0].probe or {})
        finally:
            target.close()

    probe = connect()
    real = probe["executable"]
    assert real != str(shim) and Path(real).is_file()
    assert calls.read_text().count("x") == 1
    remembered = json.loads((cache / FILE).read_text())
    assert remembered == {f"{label} {shim}": real}
    assert connect()["executable"] == real
    assert calls.read_text().count("x") == 1  # the shim was not run again

    (cache / FILE).write_text(json.dumps({f"{label} {shim}": str(tmp_path / "gone" / "python3")}))
    assert connect()["executable"] == real  # through the shim again
    assert calls.read_text().count("x") == 2
    assert json.loads((cache / FILE).read_text()) == {f"{label} {shim}": real}


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_a_file_that_is_not_its_blob_name_is_refused_and_the_host_keeps_nothing(
    tmp_path: Path, ssh_pool: Any, cache: Path, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """Over either link, one stream of the helper's ``receive``."""
    from mltrain.compute.ssh.sync import put_blobs
    from mltrain.errors import WorkspaceError

    monkeypatch.setenv("MLTRAIN_SSH_CLIENT", client)

    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(b"the real content " + os.urandom(8))
    bad.write_bytes(b"not what the name says")
    good_sha = hashlib.sha256(good.read_bytes()).hexdigest()
    claimed = hashlib.sha256(b"something else " + os.urandom(8)).hexdigest()
    target = SSHCompute(**ssh_pool.options(ssh_pool.hosts[0]))
    try:
        target.check()
        remote = target.remotes[0]
        assert remote.via == client
        with pytest.raises(WorkspaceError):
            put_blobs(remote, [(good, good_sha), (bad, claimed)])
        blobs = Path(remote.probe["workdir"]) / "blobs"
        assert not (blobs / claimed).exists()
        assert (blobs / good_sha).read_bytes() == good.read_bytes()  # checked, so kept
        assert put_blobs(remote, [(good, good_sha)]) == good.stat().st_size
    finally:
        target.close()


def test_the_ssh_client_reads_the_same_user_config_as_paramiko(tmp_path, ssh_pool, monkeypatch):
    """A host alias of ``$HOME/.ssh/config`` (the file paramiko reads) means the same host over the
    OpenSSH link, where ``ssh`` alone would read the login's own home instead."""
    from mltrain.compute.ssh import openssh
    from mltrain.compute.ssh.config import SSHComputeConfig, SSHHostConfig

    host = ssh_pool.hosts[1]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host pool-alias\n  HostName {host.addr}\n  Port {host.port}\n  User root\n  IdentityFile {host.client_key}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    alias = SSHHostConfig(host="pool-alias")
    config = SSHComputeConfig(hosts=[alias], known_hosts=str(ssh_pool.known_hosts))
    args = openssh.argv(openssh.client(), alias, config, "echo reached")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and proc.stdout.strip() == "reached", proc.stderr
    (home / ".ssh" / "config").unlink()  # no user config: none read at all, so the alias means nothing
    args = openssh.argv(openssh.client(), alias, config, "echo reached")
    assert subprocess.run(args, capture_output=True, timeout=60, stdin=subprocess.DEVNULL).returncode != 0
