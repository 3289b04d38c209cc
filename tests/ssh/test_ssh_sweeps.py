"""Hydra multirun sweeps (``python -m mltrain -m ... +compute=ssh``) over two real sshd on loopback:
children spread over both hosts, as many at once as the hosts' slots; a host lost mid-sweep fails
only its child (or, with ``compute.retries``, runs it again on the other host) and the sweep ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from support import start_mltrain, write_script

from mltrain.workspace import Workspace, WorkspaceSettings

# Marks its run in --marks, then waits (at most --wait_s) until --together runs have marked theirs: a
# child that sees them all ran while all of them had started (none had ended).
TOGETHER = """
import argparse, os, time
from mltrain import Run
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=0.0)
p.add_argument("--marks", default="")
p.add_argument("--together", type=int, default=1)
p.add_argument("--wait_s", type=float, default=120.0)
a = p.parse_args()
open(os.path.join(a.marks, os.environ["MLTRAIN_RUN_ID"]), "w").close()
deadline = time.monotonic() + a.wait_s
seen = len(os.listdir(a.marks))
while seen < a.together and time.monotonic() < deadline:
    time.sleep(0.1)
    seen = len(os.listdir(a.marks))
run = Run.get_context()
run.log("x", a.x)
run.log("together", seen)
"""

# Prints STARTED, then waits while --hold exists (at most 300 s).
HOLD = """
import argparse, os, time
from mltrain import Run
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=0.0)
p.add_argument("--hold", default="")
a = p.parse_args()
print("STARTED", flush=True)
deadline = time.monotonic() + 300
while a.hold and os.path.exists(a.hold) and time.monotonic() < deadline:
    time.sleep(0.1)
Run.get_context().log("x", a.x)
print("FINISHED", a.x, flush=True)
"""


def _job(project: Path, name: str, script: str, **arguments: Any) -> list[str]:
    """Overrides selecting ``conf/job/NAME.yaml`` (``script`` in ``project/src``), ranked by ``x``."""
    write_script(project / "src", f"{name}.py", script)
    args = "".join(f"  {k}: {v}\n" for k, v in {"x": 0, **arguments}.items())
    write_script(project / "conf" / "job", f"{name}.yaml", f"name: {name}\nsource_dir: src\nscript: {name}.py\n")
    with open(project / "conf" / "job" / f"{name}.yaml", "a") as f:
        f.write(f"arguments:\n{args}")
    return ["environment=system", f"job={name}", "sweep.primary_metric.name=x", "sweep.register=none"]


def _workspace(project: Path) -> Workspace:
    return Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))


def _the_sweep(project: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ws = _workspace(project)
    parents = [r for r in ws.runs.list(limit=None) if r["parent_run_id"] is None]
    assert len(parents) == 1, parents
    return parents[0], ws.runs.list(parent_run_id=parents[0]["id"], limit=None)


def test_sweep_spreads_children_over_both_hosts_as_many_at_once_as_their_slots(project, mltrain, ssh_pool):
    marks = project / "marks"
    marks.mkdir()
    job = _job(project, "together", TOGETHER, marks=marks, together=4)
    a, b = ssh_pool.hosts  # two slots each, sweep.max_concurrent_runs unset
    proc = mltrain("-m", *job, *ssh_pool.overrides(), "job.arguments.x=1,2,3,4", timeout=600)
    assert proc.returncode == 0, proc.output
    assert "up to 4 children at a time" in proc.stdout + proc.stderr, proc.output
    parent, children = _the_sweep(project)
    assert parent["status"] == "Completed"
    assert len(children) == 4 and all(c["status"] == "Completed" for c in children), children
    hosts = sorted(c["job_ref"]["host"] for c in children)  # where each child ran, as recorded
    assert hosts == sorted([a.addr, a.addr, b.addr, b.addr])  # two on each host: their slots
    assert all(c["job_ref"]["kind"] == "ssh" for c in children)
    # each child saw all four started before any ended: the four ran at once
    ws = _workspace(project)
    assert [ws.metrics.summary(c["id"])["together"] for c in children] == [4, 4, 4, 4], proc.output


def _wait_for_job(workdir: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for out in workdir.glob("runs/*/.mltrain/stdout"):
            if b"STARTED" in out.read_bytes():
                return
        time.sleep(0.1)
    raise AssertionError(f"no job started under {workdir}")


def _sweep_with_a_dying_host(project: Path, ssh_pool: Any, addr: str, *extra: str) -> tuple[str, int, str]:
    """A 4-trial sweep over a fresh host (one slot) and host b (one slot); the fresh host is killed
    while a child runs there, then the children are let go. Returns (stdout+stderr, exit code, the
    dead host's address)."""
    hold = project / "hold"
    hold.write_text("")
    job = _job(project, "hold", HOLD, hold=hold)
    c = ssh_pool.make_host(addr, f"sweep-dying-{time.monotonic_ns()}")
    b = ssh_pool.hosts[1]
    known = project / "known_hosts"
    known.write_text(c.known_hosts_line() + b.known_hosts_line())
    entries = ",".join("{" + ",".join(f"{k}:{v}" for k, v in h.entry(slots=1).items()) + "}" for h in (c, b))
    opts = ["+compute=ssh", f"compute.hosts=[{entries}]", f"compute.known_hosts={known}", "compute.keepalive_s=1"]
    proc = start_mltrain(project, "-m", *job, *opts, *extra, "job.arguments.x=1,2,3,4")
    try:
        _wait_for_job(c.workdir)
        c.kill()
        hold.unlink()
        out, err = proc.communicate(timeout=300)  # bounded: heartbeats every second, lost after 3
    finally:
        if proc.poll() is None:
            proc.kill()
        c.stop_jobs()
    return out + err, int(proc.returncode), c.addr


def test_host_lost_mid_sweep_fails_only_its_child_and_the_sweep_ends(project, ssh_pool):
    output, code, dead = _sweep_with_a_dying_host(project, ssh_pool, "127.0.0.11")
    parent, children = _the_sweep(project)
    assert code != 0 and parent["status"] == "Failed", output  # the sweep ended, reporting the lost child
    assert len(children) == 4, output  # the rest of the sweep went on
    failed = [c for c in children if c["status"] != "Completed"]
    assert len(failed) == 1, [(c["status"], c["error"]) for c in children]
    assert failed[0]["status"] == "Failed" and "connection lost" in failed[0]["error"], failed[0]
    assert failed[0]["job_ref"]["host"] == dead
    b = ssh_pool.hosts[1].addr
    assert all(c["job_ref"]["host"] == b for c in children if c["status"] == "Completed")  # never the dead host


def test_host_lost_mid_sweep_with_retries_runs_the_child_again_on_the_other_host(project, ssh_pool):
    output, code, dead = _sweep_with_a_dying_host(project, ssh_pool, "127.0.0.12", "compute.retries=1")
    parent, children = _the_sweep(project)
    assert code == 0 and parent["status"] == "Completed", output
    assert len(children) == 4 and all(c["status"] == "Completed" for c in children), output
    b = ssh_pool.hosts[1]
    logs = {c["id"]: Path(c["run_dir"], "logs", "std_log.txt").read_text() for c in children}
    moved = [i for i, log in logs.items() if "running it again on" in log]
    assert len(moved) == 1, logs  # the child of the lost host, run again ...
    log = logs[moved[0]]
    assert f"connection lost to root@{dead}:" in log and f"running it again on root@{b.addr}:{b.port}" in log, log
    assert "FINISHED" in log[log.index("running it again on") :]  # ... to its end there
    assert all(c["job_ref"]["host"] == b.addr for c in children)  # the moved child's reference followed it
