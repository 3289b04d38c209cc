"""Sweeps (``python -m mltrain -m``) on the Ray cluster compute target, against the session's real
two-node cluster (token authentication on): every child is an isolated recorded run, as many run at
once as the cluster holds unless ``sweep.max_concurrent_runs`` says fewer, and a child stopped by
early termination is stopped on the cluster. By default the children are forked by warm actors
(``sweep.prewarm``, one per concurrent child, killed at the end); with ``sweep.prewarm=false`` each
child is a Ray job of its own (which ends STOPPED when the child is stopped)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from raycluster import jobs_client
from support import write_script

from mltrain.workspace import Workspace, WorkspaceSettings

pytestmark = pytest.mark.slow

# --x: logs "score" = x * k for k = 1..steps; with --hold FILE and x == --hold_at it then waits while FILE
# exists (until stopped); writes outputs/x.txt and the node it ran on; sleeps --pause seconds first.
CURVE = """
import argparse, os, socket, time
from mltrain import Run

p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=0.0)
p.add_argument("--steps", type=int, default=1)
p.add_argument("--pause", type=float, default=0.0)
p.add_argument("--hold", default="")
p.add_argument("--hold_at", type=float, default=None)
a = p.parse_args()
time.sleep(a.pause)
run = Run.get_context()
for k in range(1, a.steps + 1):
    run.log("score", a.x * k, step=k)
run.flush()
print(f"x={a.x}", flush=True)
if a.hold and a.hold_at == a.x:
    print("HOLDING", flush=True)
    while os.path.exists(a.hold):
        time.sleep(0.05)
os.makedirs("outputs", exist_ok=True)
with open("outputs/x.txt", "w") as f:
    f.write(f"{a.x} {os.getcwd()}")
"""

JOB = """
name: ray-sweeps
source_dir: src
script: curve.py
arguments:
  x: 0
"""


@pytest.fixture
def curve_on_cluster(project: Path, ray_cluster) -> list[str]:
    """Overrides of a sweep of the curve script on the test cluster, each child's Ray job kept (to be
    inspected), ranked by its score."""
    write_script(project / "src", "curve.py", CURVE)
    write_script(project / "conf" / "job", "curve.yaml", JOB)
    return [
        "-m",
        "environment=system",
        "job=curve",
        "sweep.primary_metric.name=score",
        "+compute=cluster",
        f"compute.address={ray_cluster.dashboard_url}",
        "compute.keep_job=true",
        "compute.cancel_grace_s=2",
    ]


def the_sweep(project: Path) -> tuple[dict, list[dict], Workspace]:
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    (parent,) = [r for r in ws.runs.list(limit=None) if r["parent_run_id"] is None]
    kids = sorted(ws.runs.list(parent_run_id=parent["id"], limit=None), key=lambda r: r["created_at"])
    return parent, kids, ws


def x_of(run: dict) -> float:
    args = run["arguments"]
    return float(args[args.index("--x") + 1])


def ray_jobs(ray_cluster, kids: list[dict]) -> dict[str, object]:
    """The Ray job (JobDetails) of each child run, by run id."""
    client = jobs_client(ray_cluster)
    return {k["id"]: client.get_job_info(f"mltrain-{k['id']}-1") for k in kids}


def most_at_once(jobs: list[object]) -> int:
    """The largest number of these Ray jobs that were running at the same moment (Ray's own times)."""
    events = sorted([(j.start_time, 1) for j in jobs] + [(j.end_time, -1) for j in jobs], key=lambda e: (e[0], e[1]))
    now = top = 0
    for _, delta in events:
        now += delta
        top = max(top, now)
    return top


def test_sweep_children_are_recorded_runs_on_the_cluster_as_many_as_it_holds(
    ray_cluster, mltrain, project, curve_on_cluster, cluster_env
):
    proc = mltrain(
        *curve_on_cluster, "sweep.prewarm=false", "+job.arguments.pause=3", "job.arguments.x=1,2,3,4", env=cluster_env
    )
    assert proc.returncode == 0, proc.output
    assert "up to 2 children at a time" in proc.stdout  # the cluster's capacity: one CPU on each node
    parent, kids, ws = the_sweep(project)
    assert parent["status"] == "Completed"
    assert sorted(x_of(k) for k in kids) == [1.0, 2.0, 3.0, 4.0]
    assert all(k["status"] == "Completed" for k in kids)
    assert len({k["run_dir"] for k in kids}) == 4  # a folder of its own each
    wheres = set()
    for kid in kids:
        assert kid["compute"] == f"cluster ({ray_cluster.dashboard_url})"
        assert ws.metrics.summary(kid["id"])["score"] == x_of(kid)
        x, where = (Path(kid["run_dir"]) / "outputs" / "x.txt").read_text().split()
        assert float(x) == x_of(kid)
        wheres.add(where)
    assert len(wheres) == 4  # each child ran in a private folder on its node
    jobs = ray_jobs(ray_cluster, kids)
    assert {j.status.value for j in jobs.values()} == {"SUCCEEDED"}
    assert most_at_once(list(jobs.values())) == 2  # the launcher used the whole cluster, not more
    assert ws.metrics.summary(parent["id"])["best_score"] == 4.0


def test_max_concurrent_runs_limits_the_children_on_the_cluster(
    ray_cluster, mltrain, project, curve_on_cluster, cluster_env
):
    proc = mltrain(
        *curve_on_cluster,
        "sweep.prewarm=false",
        "sweep.max_concurrent_runs=1",
        "+job.arguments.pause=1",
        "job.arguments.x=1,2,3",
        env=cluster_env,
    )
    assert proc.returncode == 0, proc.output
    assert "up to 1 children at a time" in proc.stdout
    _, kids, _ = the_sweep(project)
    assert [k["status"] for k in kids] == ["Completed"] * 3
    jobs = ray_jobs(ray_cluster, kids)
    assert most_at_once(list(jobs.values())) == 1


def early_terminated_sweep(mltrain, project: Path, curve_on_cluster: list[str], cluster_env, *extra: str) -> dict:
    """x=1 reports 1, 2, 3 and completes; then x=0.2 reports 0.2, 0.4, 0.6 and would wait for ever on the
    cluster: the bandit policy must stop it there (the 180 s cap would cancel it with another reason).
    Checks the sweep and its two children; returns them by x."""
    hold = project / "hold"
    hold.touch()
    proc = mltrain(
        *curve_on_cluster,
        *extra,
        "sweep.early_termination.policy=bandit",
        "sweep.early_termination.slack_factor=0.1",
        "sweep.max_concurrent_runs=1",
        "+job.arguments.steps=3",
        f"+job.arguments.hold={hold}",
        "+job.arguments.hold_at=0.2",
        "job.max_run_duration_s=180",
        "job.arguments.x=1,0.2",
        env=cluster_env,
    )
    assert proc.returncode == 0, proc.output  # a child stopped early is not a failure
    assert "1 stopped early" in proc.stdout
    parent, kids, _ = the_sweep(project)
    assert parent["status"] == "Completed"
    by_x = {x_of(k): k for k in kids}
    assert by_x[1.0]["status"] == "Completed"
    assert by_x[0.2]["status"] == "Canceled" and by_x[0.2]["error"] == "early termination"
    assert hold.exists()  # it did not end by itself
    return by_x


def test_early_termination_stops_the_childs_ray_job(ray_cluster, mltrain, project, curve_on_cluster, cluster_env):
    by_x = early_terminated_sweep(mltrain, project, curve_on_cluster, cluster_env, "sweep.prewarm=false")
    stopped = by_x[0.2]
    jobs = ray_jobs(ray_cluster, list(by_x.values()))
    assert jobs[by_x[1.0]["id"]].status.value == "SUCCEEDED"
    assert jobs[stopped["id"]].status.value == "STOPPED"  # stopped on the cluster, not left running
    running = [j for j in jobs_client(ray_cluster).list_jobs() if j.status.value in ("PENDING", "RUNNING")]
    assert running == []


def warm_actors_alive(ray_cluster) -> list[dict]:
    """The warm actors of mltrain the cluster still runs (Ray's State API)."""
    import json
    import urllib.request

    token = ray_cluster.token_file.read_text().strip()
    req = urllib.request.Request(
        f"{ray_cluster.dashboard_url}/api/v0/actors?limit=10000&detail=false",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        actors = json.loads(resp.read())["data"]["result"]["result"]
    return [a for a in actors if "WarmWorker" in str(a.get("class_name")) and a.get("state") != "DEAD"]


def no_warm_actors_left(ray_cluster, timeout: float = 30) -> bool:
    """True once the cluster runs no warm actor of mltrain (Ray marks killed actors dead a moment later)."""
    deadline = time.monotonic() + timeout
    while warm_actors_alive(ray_cluster):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_warm_sweep_children_are_recorded_runs_forked_by_warm_actors(
    ray_cluster, mltrain, project, curve_on_cluster, cluster_env
):
    proc = mltrain(*curve_on_cluster, "+job.arguments.steps=2", "job.arguments.x=1,2,3,4,5,6", env=cluster_env)
    assert proc.returncode == 0, proc.output
    assert "up to 2 children at a time" in proc.stdout
    parent, kids, ws = the_sweep(project)
    assert parent["status"] == "Completed"
    assert sorted(x_of(k) for k in kids) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert all(k["status"] == "Completed" for k in kids)
    wheres, actors = set(), set()
    for kid in kids:
        assert ws.metrics.summary(kid["id"])["score"] == x_of(kid) * 2
        x, where = (Path(kid["run_dir"]) / "outputs" / "x.txt").read_text().split()
        assert float(x) == x_of(kid)
        wheres.add(where)
        ref = ws.runs.get(kid["id"])["job_ref"]
        assert ref["kind"] == "ray" and ref["actor"].startswith("mltrain-warm-")
        assert ref["node_ip"] in ("127.0.0.2", "127.0.0.3") and len(ref["node_id"]) >= 16
        assert ref["node"] == f"{ref['node_ip']} (Ray node {ref['node_id']})"
        actors.add(ref["actor"])
        log = (Path(kid["run_dir"]) / "logs" / "std_log.txt").read_text()
        assert f"x={x_of(kid)}" in log and "forked by warm Ray worker" in log
    assert len(wheres) == 6  # a private folder each
    assert 1 <= len(actors) <= 2  # at most one warm actor per concurrent child (the first ready may serve all)
    client = jobs_client(ray_cluster)
    assert not [j for j in client.list_jobs() if any(k["id"] in (j.submission_id or "") for k in kids)]
    assert no_warm_actors_left(ray_cluster)  # killed when the sweep ended


def test_early_termination_stops_a_warm_child(ray_cluster, mltrain, project, curve_on_cluster, cluster_env):
    early_terminated_sweep(mltrain, project, curve_on_cluster, cluster_env)
    assert no_warm_actors_left(ray_cluster)


def _child_log(project: Path, marker: str, run, timeout: float = 300) -> Path:
    """The log of the sweep's child once it shows ``marker`` (a sweep prints progress, not output)."""
    deadline = time.monotonic() + timeout
    while True:
        for log in (project / ".mltrain" / "runs").glob("*/logs/std_log.txt"):
            if marker in log.read_text(errors="replace"):
                return log
        assert run.proc.poll() is None and time.monotonic() < deadline, f"{marker!r} never came:\n{run.text}{run.err}"
        time.sleep(0.2)


def test_driver_killed_then_recovery_stops_a_warm_child(ray_cluster, cli_json, project, cluster_env):
    from conformance import SIGNAL_AWARE
    from support import start_mltrain
    from test_ray_runs import Follower, bare

    write_script(project / "src", "job.py", SIGNAL_AWARE)
    run = Follower(
        start_mltrain(project, "-m", *bare(ray_cluster.dashboard_url, "+job.arguments.n=1"), env=cluster_env)
    )
    _child_log(project, "READY", run)
    run.proc.send_signal(signal.SIGKILL)  # the sweep's driver dies; its warm actor and child live on
    run.proc.wait(30)
    runs = cli_json("runs", "list", env=cluster_env)  # any command recovers orphaned runs first
    (child,) = [r for r in runs if r.get("parent_run_id")]
    info = cli_json("runs", "show", child["id"], env=cluster_env)
    assert info["status"] == "Failed" and "driver lost" in info["error"]
    assert info["job_ref"]["actor"].startswith("mltrain-warm-")
    assert (Path(info["run_dir"]) / "outputs" / "stopped.txt").read_text() == "SIGTERM"  # stopped through its actor
    assert no_warm_actors_left(ray_cluster, timeout=120)  # the driverless actors end by themselves


def _warm_child_on_the_worker_node(ray_cluster, project, cluster_env, retries: int):
    from support import start_mltrain
    from test_ray_runs import NODE_JOB, Follower, bare

    write_script(project / "src", "job.py", NODE_JOB)
    url = ray_cluster.dashboard_url
    extra = ["+compute.resources.worker_node=1", f"compute.max_retries={retries}", "+job.arguments.n=1"]
    run = Follower(start_mltrain(project, "-m", *bare(url, *extra), env=cluster_env))
    log = _child_log(project, "READY", run)
    assert "forked by warm Ray worker" in log.read_text()
    ray_cluster.kill_worker_raylet()  # the node dies under the warm actor and its child
    return run, log


def test_warm_child_whose_node_dies_is_retried_as_a_ray_job(ray_cluster, cli_json, project, cluster_env):
    run, log = _warm_child_on_the_worker_node(ray_cluster, project, cluster_env, retries=1)
    try:
        _child_log(project, "retry 1 of 1, as a Ray job", run, timeout=180)
    finally:
        ray_cluster.start_worker()  # the retry waits for a node with worker_node, then runs there
    assert run.finish(600) == 0, run.text + run.err
    (child,) = [r for r in cli_json("runs", "list", env=cluster_env) if r.get("parent_run_id")]
    info = cli_json("runs", "show", child["id"], env=cluster_env)
    assert info["status"] == "Completed", info
    assert (Path(info["run_dir"]) / "outputs" / "done.txt").read_text() == "finished"
    assert info["job_ref"]["job"] == f"mltrain-{child['id']}" and "actor" not in info["job_ref"]  # now a Ray job
    assert "was lost" in log.read_text() and "FINISHED" in log.read_text()
    assert no_warm_actors_left(ray_cluster, timeout=60)


def test_warm_child_whose_node_dies_without_retries_fails_with_the_reason(ray_cluster, cli_json, project, cluster_env):
    run, _ = _warm_child_on_the_worker_node(ray_cluster, project, cluster_env, retries=0)
    try:
        assert run.finish(300) == 1, run.text + run.err
    finally:
        ray_cluster.start_worker()
    (child,) = [r for r in cli_json("runs", "list", env=cluster_env) if r.get("parent_run_id")]
    info = cli_json("runs", "show", child["id"], env=cluster_env)
    assert info["status"] == "Failed"
    assert "warm Ray worker running this run died" in info["error"] and "compute.max_retries=0" in info["error"]
    assert info["error"].startswith("the warm Ray worker running this run died")  # not "the script failed"
    assert info["exit_code"] is None


def test_starting_actors_report_progress_and_both_serve_once_ready(
    ray_cluster, mltrain, project, curve_on_cluster, cluster_env, tmp_path
):
    """Actors slow to start (their fork server imports a module that takes 20 s) say what they do,
    per node, while the sweep waits; once ready, both run children."""
    slow = tmp_path / "slowpath"
    slow.mkdir()
    (slow / "slowmod.py").write_text("import time\ntime.sleep(20)\n")
    proc = mltrain(
        *curve_on_cluster,
        f"+job.env_vars.PYTHONPATH={slow}",
        "sweep.prewarm_modules=[slowmod]",
        "sweep.max_concurrent_runs=2",
        "+job.arguments.pause=2",
        "job.arguments.x=1,2,3,4",
        env=cluster_env,
    )
    assert proc.returncode == 0, proc.output
    progress = [line for line in proc.stdout.splitlines() if line.startswith("[cluster] warm worker")]
    assert any("on node 127.0.0." in line and "importing the script's modules" in line for line in progress), (
        proc.stdout
    )
    assert len({line.split()[3].rstrip(":") for line in progress}) == 2  # a line for each starting actor
    _, kids, ws = the_sweep(project)
    assert all(k["status"] == "Completed" for k in kids)
    assert len({ws.runs.get(k["id"])["job_ref"]["actor"] for k in kids}) == 2  # both actors served
    assert "Traceback" not in proc.stderr and "ValueError" not in proc.stderr
