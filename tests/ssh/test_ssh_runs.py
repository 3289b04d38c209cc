"""SSH compute end to end against two real sshd on loopback: the iris run, upload dedup, host keys,
clear errors before a run starts, a host lost mid-run (bounded failure, retry on the other host),
driver SIGKILL then recovery, and `mltrain compute check`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from support import start_mltrain, write_script

from mltrain.compute.ssh import SSHCompute
from mltrain.errors import ComputeError
from mltrain.remote.procs import group_exists


def test_iris_run_end_to_end_over_ssh(mltrain, cli_json, ssh_pool):
    proc = mltrain(*ssh_pool.overrides(ssh_pool.hosts[0]))
    assert proc.returncode == 0, proc.output
    assert "accuracy of the SVC on the test set" in proc.stdout  # streamed from the host
    runs = cli_json("runs", "list")
    assert runs[0]["status"] == "Completed" and runs[0]["compute"].startswith("ssh (")
    shown = cli_json("runs", "show", runs[0]["id"])
    assert 0.9 < shown["metrics"]["accuracy"] <= 1.0  # metrics came back from the remote run folder
    assert {"outputs/model.joblib", "logs/std_log.txt"} <= {a["path"] for a in shown["artifacts"]}
    assert shown["job_ref"]["kind"] == "ssh" and shown["job_ref"]["host"] == "127.0.0.2"
    assert cli_json("models", "show", "sklearn-iris")["run_id"] == runs[0]["id"]
    # the environment is recorded as living on that host, not here
    envs = cli_json("envs", "list")
    assert any("ssh:" in str(e) for e in envs), envs
    # the remote run folder is gone; the environment stays for the next run
    workdir = ssh_pool.hosts[0].workdir
    assert not (workdir / "runs" / runs[0]["id"]).exists()
    assert list((workdir / "venvs").iterdir())


def _run_once(ws, target: SSHCompute, source: Path, env, built) -> tuple[int, str]:
    from conformance import RecordingSink

    from mltrain.compute.base import RunSpec
    from mltrain.environments.shim import ensure_shim
    from mltrain.workspace.runs import new_run_id

    snap = ws.snapshots.take(source)
    run_id = new_run_id()
    run_dir = ws.run_dir(run_id)
    run_dir.mkdir(parents=True)
    spec = RunSpec(run_id, "dedup", run_dir, snap.id, "job.py", [], {}, ensure_shim())
    target.upload(ws, spec)
    sink = RecordingSink()
    handle = target.start(spec, built, sink)
    code = handle.wait(120)
    target.collect(spec, handle)
    target.cleanup(spec, handle)
    return int(code), sink.text()


def _prepared(ws, target: SSHCompute, tmp_path: Path):
    import dataclasses

    from mltrain.config.schema import EnvironmentConfig
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec

    node = {**dataclasses.asdict(EnvironmentConfig()), "name": "bare", "build": "venv", "pip": []}
    env = resolve(EnvSpec.from_config(node, base_dir=tmp_path), ws)
    return env, target.prepare(ws, env, lambda line: None)


def _two_files_and_a_new_host(tmp_path: Path, ssh_pool, name: str) -> tuple[Path, SSHCompute]:
    """A source folder of two files (``job.py`` prints ``rows 20000``) and a target over a new host (its
    blob cache empty)."""
    source = tmp_path / "src"
    write_script(source, "job.py", "import data\nprint('rows', len(data.ROWS))\n")
    write_script(source, "data.py", "ROWS = " + repr(list(range(20000))) + "\n")
    host = ssh_pool.make_host("127.0.0.4", f"{name}-{time.monotonic_ns()}")
    known = tmp_path / "known_hosts"
    known.write_text(host.known_hosts_line())
    return source, SSHCompute(hosts=[host.entry()], known_hosts=str(known))


def test_upload_sends_only_blobs_the_host_lacks(tmp_path, ssh_pool):
    from mltrain.workspace import Workspace, WorkspaceSettings

    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    source, target = _two_files_and_a_new_host(tmp_path, ssh_pool, "dedup")
    try:
        env, built = _prepared(ws, target, tmp_path)
        assert _run_once(ws, target, source, env, built) == (0, "rows 20000\n")
        first = dict(target.stats)
        assert first["blobs_sent"] >= 2 and first["bytes_sent"] > 100_000
        assert _run_once(ws, target, source, env, built) == (0, "rows 20000\n")
        assert target.stats["blobs_sent"] == first["blobs_sent"]  # the second run uploaded nothing
        assert target.stats["bytes_sent"] == first["bytes_sent"]
        write_script(source, "job.py", "import data\nprint('changed', len(data.ROWS))\n")
        assert _run_once(ws, target, source, env, built) == (0, "changed 20000\n")
        assert target.stats["blobs_sent"] == first["blobs_sent"] + 1  # only the changed file travelled
        assert target.stats["bytes_sent"] < first["bytes_sent"] + 1000
    finally:
        target.close()


def test_a_new_connection_starts_a_job_with_its_files_in_one_command(tmp_path, ssh_pool):
    """A fresh target (a new command) makes the run folder with the job's start request: one helper
    command when the host has the files; when it lacks some, it says which, they go, and it starts."""
    import dataclasses

    from mltrain.config.schema import EnvironmentConfig
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec
    from mltrain.workspace import Workspace, WorkspaceSettings

    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    source = tmp_path / "src"
    write_script(source, "job.py", "print('hello')\n")
    node = {**dataclasses.asdict(EnvironmentConfig()), "name": "system", "build": "system"}
    env = resolve(EnvSpec.from_config(node, base_dir=tmp_path), ws)
    # a new file: the start request says it is missing, it is uploaded (the helper's `receive`), then it starts
    for script, commands in (("print('hello')\n", None), ("print('hello')\n", 1), ("print('changed')\n", 3)):
        write_script(source, "job.py", script)
        target = SSHCompute(**ssh_pool.options(ssh_pool.hosts[0]))
        try:
            built = target.prepare(ws, env, lambda line: None)
            remote, sent = target.remotes[0], target.stats["blobs_sent"]
            before = remote.round_trips
            assert _run_once(ws, target, source, env, built) == (0, script.split("'")[1] + "\n")
            if commands is not None:  # start, follow, collect and clean up: one command
                assert remote.round_trips - before == commands
                assert target.stats["blobs_sent"] - sent == (commands > 1)
        finally:
            target.close()


def test_unknown_host_key_is_refused_with_its_fingerprint(tmp_path, ssh_pool):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = SSHCompute(**ssh_pool.options(ssh_pool.hosts[0], known_hosts=str(empty)))
    with pytest.raises(ComputeError) as err:
        target.check()
    text = str(err.value)
    assert "unknown" in text and "SHA256:" in text
    assert f"ssh-keyscan -p {ssh_pool.hosts[0].port} 127.0.0.2" in text
    assert empty.read_text() == ""  # nothing was trusted
    # accept-new records it (and only then)
    target = SSHCompute(**ssh_pool.options(ssh_pool.hosts[0], known_hosts=str(empty), host_key_policy="accept-new"))
    target.check()
    target.close()
    assert f"[127.0.0.2]:{ssh_pool.hosts[0].port} ssh-ed25519 " in empty.read_text()


def test_changed_host_key_is_refused(tmp_path, ssh_pool):
    other = ssh_pool.hosts[1].host_key_pub  # host b's key, recorded for host a: a "changed" key
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.2]:{ssh_pool.hosts[0].port} {other}\n")
    target = SSHCompute(**ssh_pool.options(ssh_pool.hosts[0], known_hosts=str(known)))
    with pytest.raises(ComputeError) as err:
        target.check()
    assert "CHANGED" in str(err.value) and str(err.value).count("SHA256:") == 2
    assert "ssh-keygen -R" in str(err.value)


def test_wrong_key_wrong_port_and_no_python_fail_before_the_run(mltrain, cli_json, tmp_path, ssh_pool):
    host = ssh_pool.hosts[0]
    wrong_key = tmp_path / "wrong_key"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {wrong_key}")
    bad = ssh_pool.overrides(host)
    bad[1] = bad[1].replace(str(host.client_key), str(wrong_key))
    proc = mltrain(*bad)
    assert proc.returncode != 0 and "cannot log in to root@127.0.0.2" in proc.stderr, proc.output
    bad = ssh_pool.overrides(host)
    bad[1] = bad[1].replace(f"port:{host.port}", "port:9")
    proc = mltrain(*bad)
    assert proc.returncode != 0 and "cannot connect to root@127.0.0.2:9" in proc.stderr, proc.output
    bad = ssh_pool.overrides(host)
    bad[1] = bad[1].replace("}", ",python:python3-not-there}")  # a host without that interpreter
    proc = mltrain(*bad)
    assert proc.returncode != 0 and "has no python3-not-there" in proc.stderr, proc.output
    assert cli_json("runs", "list") == []  # nothing was recorded


SLOW = """
import time
from mltrain import Run
run = Run.get_context()
print("STARTED", flush=True)
for i in range(40):
    run.log("step", i, step=i)
    run.flush()
    time.sleep(0.5)
print("FINISHED", flush=True)
"""


def test_host_lost_mid_run_fails_in_bounded_time_then_retries_elsewhere(project, cli_json, ssh_pool):
    write_script(project / "job", "slow.py", SLOW)
    a = ssh_pool.make_host("127.0.0.6", f"dying-{time.monotonic_ns()}")
    known = project / "known_hosts"
    known.write_text(a.known_hosts_line() + ssh_pool.hosts[1].known_hosts_line())
    base = ["job.source_dir=job", "job.script=slow.py", "environment=system", "~register"]
    hosts = f"compute.hosts=[{{host:{a.addr},port:{a.port},user:root,key_file:{a.client_key},workdir:{a.workdir}}}]"
    opts = ["+compute=ssh", hosts, f"compute.known_hosts={known}", "compute.keepalive_s=1"]
    proc = start_mltrain(project, *base, *opts)
    _wait_for_job(a.workdir)
    a.kill()
    out, err = proc.communicate(timeout=120)  # bounded: heartbeats every second, lost after 3
    a.stop_jobs()
    assert proc.returncode != 0, out + err
    run = cli_json("runs", "list")[0]
    assert run["status"] == "Failed" and "connection lost" in run["error"], run

    # with retries, the run goes on on the other host
    b = ssh_pool.hosts[1]
    c = ssh_pool.make_host("127.0.0.7", f"dying2-{time.monotonic_ns()}")
    known.write_text(c.known_hosts_line() + b.known_hosts_line())
    entries = ",".join(
        f"{{host:{h.addr},port:{h.port},user:root,key_file:{h.client_key},workdir:{h.workdir},slots:{s}}}"
        for h, s in ((c, 2), (b, 1))
    )
    opts = ["+compute=ssh", f"compute.hosts=[{entries}]", f"compute.known_hosts={known}", "compute.keepalive_s=1"]
    proc = start_mltrain(project, *base, *opts, "compute.retries=1")
    _wait_for_job(c.workdir)
    c.kill()
    out, err = proc.communicate(timeout=180)
    c.stop_jobs()
    assert proc.returncode == 0, out + err
    assert "connection lost" in out + err and "running it again on" in out + err
    assert "FINISHED" in out
    run = cli_json("runs", "list")[0]
    assert run["status"] == "Completed"
    assert cli_json("runs", "show", run["id"])["job_ref"]["host"] == b.addr  # the stored reference followed it


def _wait_for_job(workdir: Path, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for out in workdir.glob("runs/*/.mltrain/stdout"):
            if b"STARTED" in out.read_bytes():
                return out.parent.parent
        time.sleep(0.1)
    raise AssertionError(f"no job started under {workdir}")


def test_driver_killed_then_recovery_stops_the_remote_job(project, cli, cli_json, ssh_pool):
    write_script(project / "job", "slow.py", SLOW)
    host = ssh_pool.hosts[1]
    base = ["job.source_dir=job", "job.script=slow.py", "environment=system", "~register"]
    proc = start_mltrain(project, *base, *ssh_pool.overrides(host))
    run_dir = _wait_for_job(host.workdir)
    pgid = json.loads((run_dir / ".mltrain" / "job.json").read_text())["pgid"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    os.killpg(pgid, 0)  # the remote job outlived its driver
    got = cli("runs", "list")  # the next command recovers
    assert got.returncode == 0, got.output
    run = cli_json("runs", "list")[0]
    assert run["status"] == "Failed" and "driver lost" in run["error"]
    assert not group_exists(pgid)  # stopped through the stored reference (a zombie not yet reaped is gone)
    assert not run_dir.exists()  # and its folder collected and removed
    assert cli_json("runs", "show", run["id"])["metrics"]["step"] >= 0  # metrics it logged were kept


def test_compute_check_reports_each_host(cli, project, ssh_pool):
    proc = cli("compute", "check", *ssh_pool.overrides())
    assert proc.returncode == 0, proc.output
    for host in ssh_pool.hosts:
        assert f"{host.addr}:{host.port}" in proc.stdout
    assert "python 3." in proc.stdout and "free disk" in proc.stdout and "slots 2" in proc.stdout


COUNTING = """
import os, sys, time
marks = sys.argv[1]
me = os.path.join(marks, os.environ["HOST_LABEL"] + "--" + os.environ["MLTRAIN_RUN_ID"])
open(me, "w").close()
time.sleep(1.5)
mine = [m for m in os.listdir(marks) if m.startswith(os.environ["HOST_LABEL"] + "--")]
print("CONCURRENT", len(mine), flush=True)
os.remove(me)
"""


def test_trials_from_threads_spread_over_hosts_by_free_slots(tmp_path, ssh_pool):
    """What a sweep launcher does: many trials at once from threads; each takes a host's free slot at
    upload and gives it back at cleanup; an unreachable host is reported and skipped."""
    import threading

    from conformance import RecordingSink

    from mltrain.compute.base import RunSpec
    from mltrain.environments.shim import ensure_shim
    from mltrain.workspace import Workspace, WorkspaceSettings
    from mltrain.workspace.runs import new_run_id

    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    source = tmp_path / "src"
    write_script(source, "job.py", COUNTING)
    snap = ws.snapshots.take(source)
    marks = tmp_path / "marks"
    marks.mkdir()
    a, b = ssh_pool.hosts
    dead = {"host": "127.0.0.9", "port": 9, "user": "root", "key_file": str(a.client_key), "slots": 4}
    target = SSHCompute(
        hosts=[a.entry(slots=1), b.entry(slots=2), dead], known_hosts=str(ssh_pool.known_hosts), connect_timeout_s=5
    )
    results: list[tuple[str, int, str]] = []
    try:
        env, built = _prepared(ws, target, tmp_path)

        def trial() -> None:
            run_id = new_run_id()
            run_dir = ws.run_dir(run_id)
            run_dir.mkdir(parents=True)
            spec = RunSpec(run_id, "pool", run_dir, snap.id, "job.py", [str(marks)], {}, ensure_shim())
            target.upload(ws, spec)
            label = target._held[run_id].label
            spec.env_vars["HOST_LABEL"] = label.replace("/", "_")
            sink = RecordingSink()
            handle = target.start(spec, built, sink)
            code = handle.wait(120)
            target.collect(spec, handle)
            target.cleanup(spec, handle)
            results.append((label, int(code), sink.text()))

        threads = [threading.Thread(target=trial) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    finally:
        target.close()
    assert len(results) == 6 and all(code == 0 for _, code, _ in results), results
    used = {label for label, _, _ in results}
    assert used == {a.entry()["user"] + f"@{a.addr}:{a.port}", f"root@{b.addr}:{b.port}"}  # never the dead host
    assert "root@127.0.0.9:9" in target.down and "cannot connect" in target.down["root@127.0.0.9:9"]
    slots = {f"root@{a.addr}:{a.port}": 1, f"root@{b.addr}:{b.port}": 2}
    for label, _, out in results:
        assert 1 <= int(out.split("CONCURRENT")[1].split()[0]) <= slots[label], (label, out)
    assert target.free_slots() == slots  # every slot was given back
    from mltrain.views.environments import list_environments

    recorded = {rec["builder"] for rec in list_environments(ws)}
    assert {f"venv@ssh:{label}" for label in slots} <= recorded  # built on each host, recorded as living there


def test_keep_failed_keeps_the_remote_folder_of_a_failed_run_only(tmp_path, ssh_pool):
    from mltrain.workspace import Workspace, WorkspaceSettings

    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    host = ssh_pool.hosts[0]
    target = SSHCompute(**ssh_pool.options(host, keep_failed=True))
    try:
        env, built = _prepared(ws, target, tmp_path)
        source = tmp_path / "ok"
        write_script(source, "job.py", "print('fine')\n")
        before = set((host.workdir / "runs").glob("*")) if (host.workdir / "runs").exists() else set()
        assert _run_once(ws, target, source, env, built)[0] == 0
        assert set((host.workdir / "runs").glob("*")) == before  # a completed run leaves nothing
        source = tmp_path / "bad"
        write_script(source, "job.py", "raise SystemExit(4)\n")
        assert _run_once(ws, target, source, env, built)[0] == 4
        kept = set((host.workdir / "runs").glob("*")) - before
        assert len(kept) == 1 and (kept.pop() / "job.py").is_file()  # the failed one is kept for a look
    finally:
        target.close()


def test_ctrl_c_stops_the_remote_process_group(project, cli_json, ssh_pool):
    write_script(project / "job", "slow.py", SLOW)
    host = ssh_pool.hosts[0]
    base = ["job.source_dir=job", "job.script=slow.py", "environment=system", "~register"]
    proc = start_mltrain(project, *base, *ssh_pool.overrides(host), "compute.cancel_grace_s=2")
    run_dir = _wait_for_job(host.workdir)
    pgid = json.loads((run_dir / ".mltrain" / "job.json").read_text())["pgid"]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    run = cli_json("runs", "list")[0]
    assert run["status"] == "Canceled", out + err
    assert not group_exists(pgid)
    assert not run_dir.exists()


def test_ssh_config_alias_and_the_default_known_hosts_work(project, cli_json, ssh_pool):
    """A host named by its ~/.ssh/config alias (HostName, Port, User, IdentityFile from there) and
    checked against ~/.ssh/known_hosts, as `ssh` would."""
    host = ssh_pool.hosts[1]
    home = project.parent / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host pool-b\n  HostName {host.addr}\n  Port {host.port}\n  User root\n  IdentityFile {host.client_key}\n"
    )
    (home / ".ssh" / "known_hosts").write_text(host.known_hosts_line())
    write_script(project / "job", "hello.py", "print('hello from the alias', flush=True)\n")
    base = ["job.source_dir=job", "job.script=hello.py", "environment=system", "~register"]
    hosts = f"compute.hosts=[{{host:pool-b,workdir:{host.workdir}}}]"
    proc = start_mltrain(project, *base, "+compute=ssh", hosts, env={"HOME": str(home)})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "hello from the alias" in out
    assert cli_json("runs", "list")[0]["status"] == "Completed"


def test_host_lost_between_placement_and_start_is_skipped_for_another(tmp_path, ssh_pool):
    """A host that dies after a run was placed on it (its slot taken, the run folder to come with
    the start request) but before the job started: the start goes to another host (no retry
    needed: nothing ran), the lost host is skipped from then on. The host is killed at exactly that
    point, between ``upload`` and ``start``."""
    from conformance import RecordingSink

    from mltrain.compute.base import RunSpec
    from mltrain.environments.shim import ensure_shim
    from mltrain.workspace import Workspace, WorkspaceSettings
    from mltrain.workspace.runs import new_run_id

    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    source = tmp_path / "src"
    write_script(source, "job.py", "import os\nprint('ran in', os.getcwd())\n")
    a = ssh_pool.hosts[0]
    lost = ssh_pool.make_host("127.0.0.13", f"lost-early-{time.monotonic_ns()}")
    known = tmp_path / "known_hosts"
    known.write_text(a.known_hosts_line() + lost.known_hosts_line())
    # the lost host has more free slots, so it is the one a run is given first
    target = SSHCompute(hosts=[a.entry(slots=1), lost.entry(slots=4)], known_hosts=str(known), connect_timeout_s=5)
    lost_label = f"root@{lost.addr}:{lost.port}"
    try:
        env, built = _prepared(ws, target, tmp_path)
        assert target.capacity() == 5  # both answered
        run_id = new_run_id()
        (run_dir := ws.run_dir(run_id)).mkdir(parents=True)
        spec = RunSpec(run_id, "lost", run_dir, ws.snapshots.take(source).id, "job.py", [], {}, ensure_shim())
        target.upload(ws, spec)
        assert target.pool.held[run_id].label == lost_label  # placed there
        lost.kill()  # its sshd and the sessions it serves: the helper's connection goes
        sink = RecordingSink()
        handle = target.start(spec, built, sink)
        code = handle.wait(120)
        target.collect(spec, handle)
        target.cleanup(spec, handle)
        assert code == 0, sink.text()
        assert f"ran in {a.workdir}/runs/{run_id}" in sink.text()  # on the other host
        assert lost_label in target.down
        assert target.capacity() == 1 and target.free_slots() == {f"root@{a.addr}:{a.port}": 1}
        assert _run_once(ws, target, source, env, built)[0] == 0  # later runs go straight to the other host
    finally:
        target.close()


def test_the_helper_is_unpacked_once_into_a_folder_where_python_caches_its_bytecode(tmp_path, ssh_pool):
    """Two connections to a new host at once both get the helper; it lives in one folder (no half
    unpacked copy left), whose modules Python compiles once, not at every connection."""
    import threading

    host = ssh_pool.make_host("127.0.0.4", f"unpack-{time.monotonic_ns()}")
    known = tmp_path / "known_hosts"
    known.write_text(host.known_hosts_line())
    targets = [SSHCompute(hosts=[host.entry()], known_hosts=str(known)) for _ in range(2)]
    try:
        threads = [threading.Thread(target=t.check) for t in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(t.remotes[0].probe is not None for t in targets)
        entries = [p.name for p in host.workdir.iterdir() if p.name.startswith("agent-")]
        assert len(entries) == 1 and (host.workdir / entries[0] / "__main__.py").is_file(), entries
        assert list((host.workdir / entries[0] / "mltrain" / "remote" / "__pycache__").glob("ssh_agent.*.pyc"))
    finally:
        for t in targets:
            t.close()
