"""``compute.address=local``: mltrain starts a private single-node Ray cluster (token authentication on,
loopback, free ports, its own folder), runs the job on it and stops it when the invocation ends. Runs
while the session's two-node test cluster runs: the private one must not collide with it."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from support import start_mltrain, write_script

from mltrain.workspace import Workspace, WorkspaceSettings

pytestmark = pytest.mark.slow

# src/job.py, no model registered, on the private cluster of compute.address=local
ON_A_PRIVATE_CLUSTER = (
    "+compute=cluster",
    "compute.address=local",
    "environment=system",
    "~register",
    "job.source_dir=src",
    "job.script=job.py",
)


def processes_of(root: str) -> list[int]:
    """PIDs of live processes of the private cluster in ``root`` (its command line or TMPDIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (root.encode() in cmdline or f"TMPDIR={root}/tmp".encode() in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def test_local_address_runs_on_a_private_cluster_stopped_afterwards(ray_cluster, mltrain, cli_json, project):
    write_script(
        project / "src",
        "job.py",
        "import os\nfrom mltrain import Run\nos.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/where.txt', 'w').write(os.getcwd())\n"
        "Run.get_context().log('score', 0.75)\nprint('RAN ON THE PRIVATE CLUSTER')\n",
    )
    proc = mltrain(
        *ON_A_PRIVATE_CLUSTER,
        timeout=600,
    )
    assert proc.returncode == 0, proc.output
    assert "RAN ON THE PRIVATE CLUSTER" in proc.stdout
    started = re.search(r"starting a private Ray cluster \(.*token authentication on\) in (\S+)", proc.stdout)
    assert started, proc.output
    root = started.group(1)
    (run,) = cli_json("runs", "list")
    run = cli_json("runs", "show", run["id"])
    assert run["status"] == "Completed" and run["compute"] == "cluster (local)"
    assert run["metrics"]["score"] == 0.75
    assert "mltrain-run-" in (Path(run["run_dir"]) / "outputs" / "where.txt").read_text()  # ran as a Ray job
    api = run["job_ref"]["api"]
    assert re.fullmatch(r"http://127\.0\.0\.2:\d+", api) and api != ray_cluster.dashboard_url
    assert processes_of(root) == []  # nothing of the private cluster outlives the invocation
    assert not Path(root).exists()
    assert ray_cluster.alive_nodes()  # the test cluster was left alone


def test_private_cluster_is_stopped_when_mltrain_is_killed(ray_cluster, project):
    write_script(project / "src", "job.py", "import time\nprint('READY', flush=True)\ntime.sleep(600)\n")
    proc = start_mltrain(
        project,
        *ON_A_PRIVATE_CLUSTER,
    )
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + 300
    while "READY" not in seen:
        line = proc.stdout.readline()
        assert line and time.monotonic() < deadline, seen
        seen += line
    root = re.search(r"starting a private Ray cluster .* in (\S+)", seen).group(1)
    assert processes_of(root)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the watchdog stops the cluster
    proc.wait(30)
    deadline = time.monotonic() + 120
    while (processes_of(root) or Path(root).exists()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(root) == [] and not Path(root).exists()
    assert ray_cluster.alive_nodes()  # the test cluster was left alone


def test_a_sweep_on_a_local_address_runs_its_children_on_one_private_cluster(ray_cluster, mltrain, project):
    write_script(
        project / "src",
        "job.py",
        "import argparse\nfrom mltrain import Run\np = argparse.ArgumentParser()\np.add_argument('--x', type=float)\n"
        "x = p.parse_known_args()[0].x\nRun.get_context().log('score', x)\nprint(f'x={x}', flush=True)\n",
    )
    proc = mltrain(
        "-m",
        *ON_A_PRIVATE_CLUSTER,
        "sweep.primary_metric.name=score",
        "+job.arguments.x=1,2,3",
        timeout=900,
    )
    assert proc.returncode == 0, proc.output
    roots = re.findall(r"starting a private Ray cluster \(.*token authentication on\) in (\S+)", proc.stdout)
    assert len(roots) == 1, proc.output  # one for the whole sweep, not one per child
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    (parent,) = [r for r in ws.runs.list(limit=None) if r["parent_run_id"] is None]
    kids = ws.runs.list(parent_run_id=parent["id"], limit=None)
    assert parent["status"] == "Completed"
    assert sorted(ws.metrics.summary(k["id"])["score"] for k in kids) == [1.0, 2.0, 3.0]
    assert {k["status"] for k in kids} == {"Completed"}
    assert {k["compute"] for k in kids} == {"cluster (local)"}
    # the children's warm workers were reached on loopback, never at the machine's external address
    assert {k["job_ref"]["gcs"].rsplit(":", 1)[0] for k in kids} == {"127.0.0.2"}
    assert "Failed to connect" not in proc.output
    assert processes_of(roots[0]) == [] and not Path(roots[0]).exists()
    assert ray_cluster.alive_nodes()  # the test cluster was left alone
