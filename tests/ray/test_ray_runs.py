"""Runs on the Ray cluster compute target against the session's real two-node cluster (token
authentication on): the iris example end to end, placement on the worker node with outputs
returned, the worker node dying mid-run (retried, then Failed), cancel by Ctrl-C and by
``mltrain runs cancel``, recovery of a run whose driver was killed, and token errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conformance import SIGNAL_AWARE
from raycluster import jobs_client
from support import start_mltrain, write_script

pytestmark = pytest.mark.slow


def bare(address: str, *extra: str) -> list[str]:
    """Overrides of a stdlib-only job of ``src/job.py`` on the cluster's own Python."""
    return [
        "+compute=cluster",
        f"compute.address={address}",
        "compute.cancel_grace_s=2",
        "environment=system",
        "~register",
        "job.source_dir=src",
        "job.script=job.py",
        *extra,
    ]


class Follower:
    """A started ``python -m mltrain`` whose stdout is read into ``text`` as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.text = ""
        self.err = ""
        assert proc.stdout is not None and proc.stderr is not None
        threading.Thread(target=self._read, args=(proc.stdout, "text"), daemon=True).start()
        threading.Thread(target=self._read, args=(proc.stderr, "err"), daemon=True).start()

    def _read(self, stream, attr: str) -> None:
        for line in stream:
            setattr(self, attr, getattr(self, attr) + line)

    def wait_for(self, marker: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.text:
            assert self.proc.poll() is None, f"mltrain ended before {marker!r}:\n{self.text}\n{self.err}"
            assert time.monotonic() < deadline, f"{marker!r} never came:\n{self.text}\n{self.err}"
            time.sleep(0.2)

    def finish(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout)
        time.sleep(0.2)
        return code


def only_run(cli_json) -> dict:
    runs = cli_json("runs", "list")
    assert len(runs) == 1, runs
    return cli_json("runs", "show", runs[0]["id"])


def job_status(ray_cluster, submission_id: str) -> str:
    return jobs_client(ray_cluster).get_job_info(submission_id).status.value


def test_iris_end_to_end_through_the_gcs_address(ray_cluster, mltrain, cli_json, project, cluster_env):
    proc = mltrain("+compute=cluster", f"compute.address={ray_cluster.gcs_address}", env=cluster_env, timeout=900)
    assert proc.returncode == 0, proc.output
    assert "accuracy of the SVC" in proc.stdout  # streamed from the job
    run = only_run(cli_json)
    assert run["status"] == "Completed"
    assert run["compute"] == f"cluster ({ray_cluster.gcs_address})"
    assert run["metrics"]["accuracy"] > 0.9
    assert "outputs/model.joblib" in {a["path"] for a in run["artifacts"]}
    assert run["job_ref"]["kind"] == "ray" and run["job_ref"]["api"] == ray_cluster.dashboard_url
    model = cli_json("models", "show", "sklearn-iris")
    assert model["run_id"] == run["id"] and model["framework"] == "ScikitLearn"
    token = ray_cluster.token_file.read_text().strip().encode()
    for f in (project / ".mltrain").rglob("*"):
        if f.is_file():
            assert token not in f.read_bytes(), f"the token was stored in {f}"


def test_run_placed_on_the_worker_node_returns_its_outputs(ray_cluster, mltrain, cli, cli_json, project, cluster_env):
    write_script(
        project / "src",
        "job.py",
        "import os\nfrom mltrain import Run\nos.makedirs('outputs/sub', exist_ok=True)\n"
        "os.makedirs('logs', exist_ok=True)\n"
        "open('outputs/sub/result.txt', 'w').write('made on the worker')\n"
        "open('logs/own.log', 'w').write('a log line')\nRun.get_context().log('score', 0.5)\nprint('WROTE')\n"
        "import time\ntime.sleep(3)\n",  # running long enough for the driver to see where it runs
    )
    proc = mltrain(*bare(ray_cluster.dashboard_url, "+compute.resources.worker_node=1"), env=cluster_env)
    assert proc.returncode == 0, proc.output
    assert "runs on node 127.0.0.3 (Ray node " in proc.stdout
    run = only_run(cli_json)
    assert run["status"] == "Completed" and run["metrics"]["score"] == 0.5
    ref = run["job_ref"]
    assert ref["node_ip"] == "127.0.0.3" and len(ref["node_id"]) >= 16  # the worker node, by IP and Ray id
    assert f"ran on:  127.0.0.3 (Ray node {ref['node_id']})" in proc.stdout  # the summary
    shown = cli("runs", "show", run["id"])
    assert f"127.0.0.3 (Ray node {ref['node_id']})" in shown.stdout
    run_dir = Path(run["run_dir"])
    assert (run_dir / "outputs" / "sub" / "result.txt").read_text() == "made on the worker"
    assert (run_dir / "logs" / "own.log").read_text() == "a log line"
    assert "WROTE" in (run_dir / "logs" / "std_log.txt").read_text()
    assert {"outputs/sub/result.txt", "logs/own.log"} <= {a["path"] for a in run["artifacts"]}


NODE_JOB = """
import os, time
from mltrain import Run
run = Run.get_context()
print("READY", flush=True)
for tick in range(20):
    run.log("tick", tick, step=tick)
    run.flush()
    time.sleep(1)
os.makedirs("outputs", exist_ok=True)
open("outputs/done.txt", "w").write("finished")
print("FINISHED", flush=True)
"""


def test_deleted_job_is_not_listed_again_by_ray_as_failed(ray_cluster, mltrain, cli_json, project, cluster_env):
    """keep_job=false: the job is deleted once Ray is done with it, so Ray's job list does not list it
    again as FAILED ("Job supervisor actor died"), as it does for a job deleted while its supervisor runs."""
    write_script(project / "src", "job.py", "print('quick')\n")
    proc = mltrain(*bare(ray_cluster.dashboard_url), env=cluster_env)
    assert proc.returncode == 0, proc.output
    run = only_run(cli_json)
    sid = f"mltrain-{run['id']}-1"
    name = f"_ray_internal_job_actor_{sid}"  # the supervisor, whose end Ray's job server watches for
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        actors = ray_cluster.api(f"/api/v0/actors?filter_keys=name&filter_predicates=%3D&filter_values={name}")
        if all(a["state"] == "DEAD" for a in actors["data"]["result"]["result"]):
            break
        time.sleep(0.5)
    time.sleep(3)  # Ray's job server checks each supervisor every second
    listed = {j.submission_id: (j.status.value, j.message) for j in jobs_client(ray_cluster).list_jobs()}
    assert sid not in listed, listed.get(sid)


def test_worker_node_death_is_retried(ray_cluster, cli_json, project, cluster_env):
    write_script(project / "src", "job.py", NODE_JOB)
    run = Follower(
        start_mltrain(
            project,
            *bare(ray_cluster.dashboard_url, "+compute.resources.worker_node=1", "compute.max_retries=1"),
            env=cluster_env,
        )
    )
    run.wait_for("READY")
    ray_cluster.kill_worker_raylet()
    try:
        run.wait_for("retry 1 of 1", timeout=180)
    finally:
        ray_cluster.start_worker()  # the retry waits for a node with worker_node, then runs there
    assert run.finish(600) == 0, run.text + run.err
    assert "FINISHED" in run.text
    info = only_run(cli_json)
    assert info["status"] == "Completed"
    assert (Path(info["run_dir"]) / "outputs" / "done.txt").read_text() == "finished"
    # the run's series is the retry's alone; the lost attempt's ticks are set apart in a file of the run
    ticks = [p["value"] for p in cli_json("runs", "metrics", info["id"], "tick")]
    assert ticks == list(range(20)), ticks
    lost = (Path(info["run_dir"]) / "logs" / "attempt-1-metrics.jsonl").read_text().splitlines()
    assert lost and all(json.loads(line)["key"] == "tick" for line in lost)
    assert "logs/attempt-1-metrics.jsonl" in {a["path"] for a in info["artifacts"]}
    # the timeline has each attempt and the node it ran on (the worker node, restarted: a new Ray node id)
    details = [h["detail"] or "" for h in info["history"]]
    ran = [d for d in details if d.startswith("attempt ") and " on 127.0.0.3 (Ray node " in d]
    assert [d.split()[1] for d in ran] == ["1", "2"], details
    assert ran[0].split("Ray node ")[1] != ran[1].split("Ray node ")[1]


def test_worker_node_death_without_retries_fails_the_run(ray_cluster, cli_json, project, cluster_env):
    write_script(project / "src", "job.py", NODE_JOB)
    run = Follower(
        start_mltrain(
            project,
            *bare(ray_cluster.dashboard_url, "+compute.resources.worker_node=1", "compute.max_retries=0"),
            env=cluster_env,
        )
    )
    run.wait_for("READY")
    ray_cluster.kill_worker_raylet()
    try:
        assert run.finish(300) == 1, run.text + run.err
    finally:
        ray_cluster.start_worker()
    info = only_run(cli_json)
    assert info["status"] == "Failed"
    assert "node running Ray job" in info["error"] and "died" in info["error"]
    assert "compute.max_retries=0" in info["error"]
    assert info["error"].startswith("the node running Ray job")  # a lost node, not "the script failed"
    assert info["exit_code"] is None  # the script never ended: there is no exit code of it


def test_ctrl_c_stops_the_job_on_the_cluster(ray_cluster, cli_json, project, cluster_env):
    write_script(project / "src", "job.py", SIGNAL_AWARE)
    run = Follower(start_mltrain(project, *bare(ray_cluster.dashboard_url, "compute.keep_job=true"), env=cluster_env))
    run.wait_for("READY")
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130, run.text + run.err
    info = only_run(cli_json)
    assert info["status"] == "Canceled"
    assert (Path(info["run_dir"]) / "outputs" / "stopped.txt").read_text() == "SIGTERM"
    assert job_status(ray_cluster, f"mltrain-{info['id']}-1") == "STOPPED"


def test_runs_cancel_stops_the_job_from_another_process(ray_cluster, cli, cli_json, project, cluster_env):
    write_script(project / "src", "job.py", SIGNAL_AWARE)
    run = Follower(start_mltrain(project, *bare(ray_cluster.dashboard_url), env=cluster_env))
    run.wait_for("READY")
    (listed,) = cli_json("runs", "list", env=cluster_env)
    proc = cli("runs", "cancel", listed["id"], env=cluster_env)
    assert proc.returncode == 0, proc.output
    assert run.finish() == 130, run.text + run.err
    info = only_run(cli_json)
    assert info["status"] == "Canceled" and "mltrain runs cancel" in info["error"]
    assert (Path(info["run_dir"]) / "outputs" / "stopped.txt").read_text() == "SIGTERM"


def test_driver_killed_then_recovery_stops_the_ray_job(ray_cluster, cli_json, project, cluster_env):
    write_script(project / "src", "job.py", SIGNAL_AWARE)
    run = Follower(start_mltrain(project, *bare(ray_cluster.dashboard_url, "compute.keep_job=true"), env=cluster_env))
    run.wait_for("READY")
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait(30)
    (listed,) = cli_json("runs", "list", env=cluster_env)  # any command recovers orphaned runs first
    info = cli_json("runs", "show", listed["id"], env=cluster_env)
    assert info["status"] == "Failed" and "driver lost" in info["error"]
    assert job_status(ray_cluster, f"mltrain-{info['id']}-1") == "STOPPED"
    assert (Path(info["run_dir"]) / "outputs" / "stopped.txt").read_text() == "SIGTERM"


def test_wrong_token_is_refused_before_the_run_starts(ray_cluster, mltrain, cli_json, project, cluster_env, tmp_path):
    write_script(project / "src", "job.py", "print('never runs')\n")
    wrong = tmp_path / "wrong_token"
    wrong.write_text("0" * 64)
    proc = mltrain(*bare(ray_cluster.dashboard_url, f"compute.token_file={wrong}"), env=cluster_env)
    assert proc.returncode == 2, proc.output
    assert "refused the token from compute.token_file" in proc.stderr
    assert "never runs" not in proc.stdout
    assert cli_json("runs", "list") == []


def test_missing_token_is_refused_before_the_run_starts(ray_cluster, mltrain, cli_json, project, tmp_path):
    write_script(project / "src", "job.py", "print('never runs')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_TOKEN")}
    env.update({"HOME": str(tmp_path), "RAY_AUTH_MODE": "token"})
    proc = subprocess.run(
        [sys.executable, "-m", "mltrain", *bare(ray_cluster.dashboard_url)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "requires a token and mltrain found none" in proc.stderr
    assert "compute.token_file" in proc.stderr  # the hint says how to give it
    assert cli_json("runs", "list") == []


def test_token_given_inline_is_used_but_never_stored(ray_cluster, mltrain, cli_json, project, tmp_path):
    write_script(project / "src", "job.py", "print('ran with the inline token')\n")
    token = ray_cluster.token_file.read_text().strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_TOKEN")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "mltrain", *bare(ray_cluster.dashboard_url, f"compute.token={token}")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ran with the inline token" in proc.stdout
    assert token not in proc.stdout + proc.stderr
    run = only_run(cli_json)
    assert run["config"]["compute"]["token"] == "<redacted>"
    for f in (project / ".mltrain").rglob("*"):
        if f.is_file():
            assert token.encode() not in f.read_bytes(), f"the token was stored in {f}"
