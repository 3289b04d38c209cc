"""SSH hosts connected while a run's config is still being composed (mltrain.runs.preconnect): a
command line run again connects to the hosts it ran on last time at once (their ssh clients started
by the entry point, mltrain.compute.ssh.prespawn), its target takes those connections only for the
same config (a client only for the same command line), and an early connection never records a host key;
a damaged file of what was remembered reads as nothing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from support import pid_alive, write_script

from mltrain.compute.ssh import SSHCompute, early, interpreters, openssh, prespawn
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
    prespawn.discard()
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


def test_the_entry_point_starts_the_remembered_ssh_clients_and_the_connection_takes_its_own(
    fresh: Path, ssh_pool: Any
) -> None:
    node = _node(ssh_pool)
    preconnect.start(ARGV)
    preconnect.remember(node)
    assert len(json.loads((fresh / "cache" / "preconnect.json").read_text())[0]["links"]) == 1

    assert prespawn.start(ARGV) == 1  # the next run: before anything but the standard library
    started = prespawn._links[0]
    preconnect.start(ARGV)
    prespawn.discard()
    target = SSHCompute(**{k: v for k, v in node.items() if k != "_target_"})
    try:
        remote = target.remotes[0]
        assert remote.warming is not None
        remote.warming.join()
        assert remote._link is started  # the client the entry point started, not a second one
        assert remote.agent("status", "no-such-run")["exists"] is False
    finally:
        target.close()


def test_a_remembered_ssh_client_that_is_not_what_the_run_would_start_is_closed_unused(
    fresh: Path, ssh_pool: Any
) -> None:
    from mltrain.compute.ssh import interpreters

    node = _node(ssh_pool)
    preconnect.start(ARGV)
    preconnect.remember(node)
    label = SSHCompute(**{k: v for k, v in node.items() if k != "_target_"}).remotes[0].label
    interpreters.remember(label, "python3", "/another/python3")  # the host's interpreter moved since
    assert prespawn.start(ARGV) == 1
    stale = prespawn._links[0]
    preconnect.start(ARGV)  # the early connection starts the command line of today
    prespawn.discard()
    _until(lambda: not pid_alive(stale.proc.pid), "the stale ssh client was left running")
    target = SSHCompute(**{k: v for k, v in node.items() if k != "_target_"})
    try:
        remote = target.remotes[0]
        remote.warming.join()
        assert remote._link is not stale and remote.probe is not None
    finally:
        target.close()


def test_a_remembered_command_line_that_is_not_the_ssh_client_never_runs(fresh: Path) -> None:
    marker = fresh / "ran"
    (fresh / "cache").mkdir()
    entry = {"key": prespawn.command_key(ARGV), "compute": {}, "links": [["/usr/bin/touch", str(marker)]]}
    (fresh / "cache" / "preconnect.json").write_text(json.dumps([entry]))
    assert prespawn.start(ARGV) == 0
    assert not marker.exists()


def test_a_sweep_command_line_run_again_connects_to_its_hosts_while_it_is_composed(
    mltrain: Any, project: Path, ssh_pool: Any, tmp_path: Path
) -> None:
    write_script(project / "src", "job.py", "print('ran on the host')\n")
    (project / "conf" / "job").mkdir(parents=True)
    job = "name: one\nsource_dir: src\nscript: job.py\narguments:\n  x: 0\n"
    (project / "conf" / "job" / "one.yaml").write_text(job)
    args = ["-m", "environment=system", "job=one", "sweep.register=none", "sweep.primary_metric.name=x"]
    args += [*ssh_pool.overrides(ssh_pool.hosts[0]), "job.arguments.x=1,2"]
    env = {"MLTRAIN_CACHE_DIR": str(tmp_path / "cache")}
    for _ in range(2):  # the second one on the connection made while its config was composed
        proc = mltrain(*args, env=env)
        assert proc.returncode == 0, proc.output
        entries = json.loads((tmp_path / "cache" / "preconnect.json").read_text())
        assert [len(e["links"]) for e in entries] == [1]  # the sweep's command line, with its host's ssh


@pytest.mark.parametrize(
    ("argv", "early"),
    [
        (["+compute=ssh"], True),
        (["-m", "+compute=ssh", "x=1,2"], True),
        (["--multirun", "+compute=ssh"], True),
        (["--cfg", "job", "+compute=ssh"], False),
        (["-m", "--cfg", "job"], False),
        (["+compute=ssh", "detach=true"], False),
    ],
)
def test_which_command_lines_connect_to_their_hosts_early(argv: list[str], early: bool) -> None:
    from mltrain.__main__ import _connects_early

    assert _connects_early(argv) is early


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
        [entry] = json.loads((cache / "preconnect.json").read_text())
        assert (entry["key"], entry["compute"]) == (preconnect.command_key(ARGV), NODE)

    _damage(cache / interpreters.FILE, how)
    assert interpreters.remembered("root@gpu1:22", "python3") is None
    interpreters.remember("root@gpu1:22", "python3", "/usr/bin/python3.12")
    if how != "a folder":
        assert interpreters.remembered("root@gpu1:22", "python3") == "/usr/bin/python3.12"
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")]  # no scratch file left


def test_a_remembered_ssh_line_with_an_option_that_runs_a_command_never_runs(fresh: Path, ssh_pool: Any) -> None:
    """``preconnect.json`` is read before anything else and its lines are started: only the shape
    mltrain writes runs (no ProxyCommand, LocalCommand or other config file), and only from a file of this
    user's that no one else may write."""
    preconnect.start(ARGV)
    preconnect.remember(_node(ssh_pool))
    path = fresh / "cache" / "preconnect.json"
    [entry] = json.loads(path.read_text())
    [good] = entry["links"]
    assert openssh.shaped(good, openssh.client())  # what mltrain writes runs
    marker = fresh / "ran"
    hostile = [
        [*good[:4], "-o", f"ProxyCommand=touch {marker}", *good[4:]],
        [*good[:4], "-o", f"LocalCommand=touch {marker}", "-o", "PermitLocalCommand=yes", *good[4:]],
        [*good[:3], str(fresh / "evil_config"), *good[4:]],
        [*good[:-3], "-o", "BatchMode=yes", *good[-3:-2], f"-oProxyCommand=touch {marker}", *good[-2:]],
    ]
    for line in hostile:
        assert not openssh.shaped(line, openssh.client()), line
        path.write_text(json.dumps([{**entry, "links": [line]}]))
        assert prespawn.start(ARGV) == 0
    assert not marker.exists()

    path.write_text(json.dumps([entry]))
    path.chmod(0o664)  # writable by the group: as ssh ignores such a config, it is not read
    assert prespawn.start(ARGV) == 0
    path.chmod(0o600)
    assert prespawn.start(ARGV) == 1
    prespawn.discard()
