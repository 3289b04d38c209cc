"""SSH hosts connected while a run's config is still being composed (mltrain.runs.preconnect): a
command line run again connects to the hosts it ran on last time at once, its target takes those
connections only for the same config, and an early connection never records a host key; a damaged
file of what was remembered reads as nothing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from support import write_script

from mltrain.compute.ssh import SSHCompute, early, interpreters
from mltrain.remote.procs import descendants
from mltrain.runs import preconnect

ARGV = ["+compute=ssh", "job.script=job.py"]
NODE = {"_target_": preconnect.SSH_TARGET, "hosts": [{"host": "gpu1"}]}


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder and a working folder of their own; this process's command line forgotten after."""
    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(preconnect, "_command", None)
    monkeypatch.setattr(preconnect, "_begun", False)
    yield tmp_path
    thread = early.discard()
    if thread is not None:
        thread.join()


def _node(ssh_pool: Any, **changes: Any) -> dict[str, Any]:
    return {"_target_": preconnect.SSH_TARGET, **ssh_pool.options(ssh_pool.hosts[0], **changes)}


def _helpers_serving(host: Any, workdir: Path) -> list[int]:
    """PIDs of mltrain helpers serving a connection to ``host`` in ``workdir``."""
    pids = []
    for pid in descendants(host.proc.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(workdir).encode() in argv and b"serve" in argv:
            pids.append(pid)
    return pids


def _until(predicate: Any, what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_command_line_run_again_connects_to_its_hosts_before_its_target_exists(fresh: Path, ssh_pool: Any) -> None:
    node = _node(ssh_pool)
    options = {k: v for k, v in node.items() if k != "_target_"}
    preconnect.start(ARGV)  # the first run of this command line: nothing remembered, nothing connected
    assert SSHCompute(**options).remotes[0].warming is None
    preconnect.remember(node)
    assert json.loads((fresh / "cache" / "preconnect.json").read_text())[0]["compute"] == node

    preconnect.start(ARGV)  # the next run of the same command line, in the same folder
    target = SSHCompute(**options)
    try:
        remote = target.remotes[0]
        assert remote.warming is not None  # the target took the connection made before it existed
        target.check()
        assert remote.serving and remote.probe is not None
        assert remote.agent("status", "no-such-run")["exists"] is False  # the helper answers on it
    finally:
        target.close()


def test_a_run_whose_config_changed_makes_its_own_connection_and_the_early_one_is_closed(
    fresh: Path, ssh_pool: Any
) -> None:
    host = ssh_pool.hosts[0]
    old_workdir = fresh / "remembered-workdir"
    preconnect.start(ARGV)
    preconnect.remember({**_node(ssh_pool), "hosts": [host.entry(workdir=str(old_workdir))]})
    preconnect.start(ARGV)
    _until(lambda: _helpers_serving(host, old_workdir), "the early connection started no helper")

    target = SSHCompute(**ssh_pool.options(host))  # the config composed this time differs
    try:
        assert target.remotes[0].warming is None
        _until(lambda: not _helpers_serving(host, old_workdir), "the early connection was left open")
    finally:
        target.close()


def test_a_command_line_that_now_runs_elsewhere_is_forgotten(fresh: Path, ssh_pool: Any) -> None:
    preconnect.start(ARGV)
    preconnect.remember(_node(ssh_pool))
    preconnect.remember({"_target_": "mltrain.compute.local.LocalCompute"})
    assert json.loads((fresh / "cache" / "preconnect.json").read_text()) == []


def test_an_early_connection_never_records_a_host_key(fresh: Path, ssh_pool: Any) -> None:
    known = fresh / "known_hosts"
    known.write_text("")
    node = _node(ssh_pool, known_hosts=str(known), host_key_policy="accept-new")
    preconnect.start(ARGV)
    preconnect.remember(node)
    preconnect.start(ARGV)
    target = SSHCompute(**{k: v for k, v in node.items() if k != "_target_"})
    try:
        remote = target.remotes[0]
        assert remote.warming is not None
        remote.warming.join()
        assert known.read_text() == "" and remote.probe is None  # refused early, whatever the config says
        target.check()  # the run's own connection, with the run's policy
        assert remote.probe is not None and "ssh-ed25519" in known.read_text()
    finally:
        target.close()


def test_the_same_command_line_runs_twice_over_ssh(mltrain: Any, project: Path, ssh_pool: Any) -> None:
    write_script(project / "src", "job.py", "print('ran on the host')\n")
    args = ["environment=system", "~register", "job.source_dir=src", "job.script=job.py", "job.arguments=null"]
    args += ssh_pool.overrides(ssh_pool.hosts[0])
    for _ in range(2):  # the second one on the connection made while its config was composed
        proc = mltrain(*args)
        assert proc.returncode == 0, proc.output
        assert "ran on the host" in proc.stdout


def _damage(path: Path, how: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "not json":
        path.write_bytes(b"\xff\xfe{not json")
    elif how == "wrong types":
        path.write_text(json.dumps("a string" if path.name == "preconnect.json" else [1, 2, {"key": 3}]))
    elif how == "deeply nested":
        path.write_text("[" * 200_000 + "]" * 200_000)
    elif how == "huge":  # a valid file, but far larger than anything mltrain writes
        path.write_text(json.dumps({"pad": "x" * (2 << 20)}))
    elif how == "a folder":
        path.mkdir()
    elif how == "a fifo":  # no writer: reading it would wait forever
        os.mkfifo(path)


@pytest.mark.parametrize("how", ["not json", "wrong types", "deeply nested", "huge", "a folder", "a fifo"])
def test_a_damaged_cache_file_reads_as_empty_and_is_replaced(fresh: Path, how: str) -> None:
    """``preconnect.json`` and ``ssh-python.json`` (each host's real interpreter), damaged or hostile,
    read as nothing (never a crash, a hang or a huge read); the next write replaces them."""
    cache = fresh / "cache"
    _damage(cache / "preconnect.json", how)
    assert preconnect.start(ARGV) is False  # nothing remembered: no early connection
    preconnect.remember(NODE)
    if how != "a folder":  # (a folder in its place stays: nothing is stored then, and nothing fails)
        assert json.loads((cache / "preconnect.json").read_text()) == [
            {"key": preconnect.command_key(ARGV), "compute": NODE}
        ]

    _damage(cache / interpreters.FILE, how)
    assert interpreters.remembered("root@gpu1:22", "python3") is None
    interpreters.remember("root@gpu1:22", "python3", "/usr/bin/python3.12")
    if how != "a folder":
        assert interpreters.remembered("root@gpu1:22", "python3") == "/usr/bin/python3.12"
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")]  # no scratch file left
