"""Runs on Docker compute against the real dockerd of the test session: the iris example end to end,
image reuse and rebuild, failing builds, cancel, limits, out-of-memory and engine errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def write_script(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body)


def bare(image: str, *extra: str) -> list[str]:
    """Overrides of a job on docker compute in an environment without packages (a fast image)."""
    return [
        "+compute=docker",
        f"environment.docker.base_image={image}",
        "environment.name=bare",
        "environment.pip=[]",
        "~register",
        "job.source_dir=src",
        *extra,
    ]


def only_run(cli_json) -> dict:
    runs = cli_json("runs", "list")
    assert len(runs) == 1, runs
    return cli_json("runs", "show", runs[0]["id"])


def env_tags(docker_client) -> set[str]:
    return {t for img in docker_client.images.list(name="mltrain-env") for t in img.tags}


def test_iris_in_a_container_then_reuse_then_rebuild(mltrain, cli_json, project, python_image, docker_client):
    for old in docker_client.images.list(filters={"label": "mltrain.env.name=sklearn"}):  # built by other tests
        docker_client.images.remove(old.id, force=True)
    first = mltrain("+compute=docker", f"environment.docker.base_image={python_image}")
    assert first.returncode == 0, first.output
    assert "building image" in first.stdout
    run = only_run(cli_json)
    assert run["status"] == "Completed"
    assert run["compute"].startswith("docker")
    assert run["metrics"]["accuracy"] > 0.9
    assert "outputs/model.joblib" in {a["path"] for a in run["artifacts"]}
    model = cli_json("models", "show", "sklearn-iris")
    assert model["framework"] == "ScikitLearn"
    assert model["run_id"] == run["id"]
    (image,) = docker_client.images.list(filters={"label": "mltrain.env.name=sklearn"})

    second = mltrain("+compute=docker", f"environment.docker.base_image={python_image}")
    assert second.returncode == 0, second.output
    assert "building image" not in second.stdout
    assert docker_client.images.get(image.tags[0]).id == image.id

    third = mltrain("+compute=docker", f"environment.docker.base_image={python_image}", "environment.rebuild=true")
    assert third.returncode == 0, third.output
    assert "building image" in third.stdout
    assert docker_client.images.get(image.tags[0]).id != image.id
    runs = cli_json("runs", "list")
    assert [r["status"] for r in runs] == ["Completed"] * 3


def test_build_without_python_fails_the_run_and_tags_nothing(mltrain, cli_json, project, busybox_image, docker_client):
    write_script(project / "src", "job.py", "print('never runs')\n")
    before = env_tags(docker_client)
    proc = mltrain(*bare(busybox_image, "job.script=job.py"))
    assert proc.returncode != 0, proc.output
    run = only_run(cli_json)
    assert run["status"] == "Failed"
    assert "image build failed" in run["error"]
    assert "has no Python" in run["error"]  # the end of the build log
    assert "environment.docker.base_image" in run["error"]  # the hint names the fix
    assert "logs/build_log.txt" in {a["path"] for a in run["artifacts"]}
    assert env_tags(docker_client) == before


def test_missing_base_image_that_cannot_be_pulled(mltrain, cli_json, project, docker_engine):
    write_script(project / "src", "job.py", "print('never runs')\n")
    image = "127.0.0.1:9/mltrain-test/nothing:1"  # a registry address on loopback where nothing listens
    proc = mltrain(*bare(image, "job.script=job.py"))
    assert proc.returncode != 0, proc.output
    run = only_run(cli_json)
    assert run["status"] == "Failed"
    assert f"base image {image} is not in the Docker engine" in run["error"]
    assert "cannot be pulled" in run["error"]
    assert "docker pull" in run["error"]


def test_config_errors_are_refused_before_anything_is_recorded(mltrain, cli_json, project, docker_engine):
    no_image = mltrain("+compute=docker")
    assert no_image.returncode != 0
    assert "docker.base_image" in no_image.stderr
    assert "set environment.docker.base_image" in no_image.stderr
    system = mltrain("+compute=docker", "environment=system")
    assert system.returncode != 0
    assert "build: system" in system.stderr
    assert cli_json("runs", "list") == []


def test_unreachable_engine_is_a_clear_error_and_records_nothing(mltrain, cli_json, project, tmp_path):
    address = f"unix://{tmp_path}/no-engine/docker.sock"
    proc = mltrain("+compute=docker", f"compute.base_url={address}", "environment.docker.base_image=x")
    assert proc.returncode != 0
    assert f"the Docker engine at {address} cannot be reached" in proc.stderr
    assert "start dockerd" in proc.stderr and "DOCKER_HOST" in proc.stderr
    by_env = mltrain("+compute=docker", "environment.docker.base_image=x", env={"DOCKER_HOST": address})
    assert by_env.returncode != 0
    assert f"the Docker engine at {address} cannot be reached" in by_env.stderr
    assert cli_json("runs", "list") == []


LIMITS_SCRIPT = """
import json, os

def read(*paths):
    for p in paths:
        try:
            return open(p).read().strip()
        except OSError:
            pass
    return None

info = {
    "mem_v1": read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "mem_v2": read("/sys/fs/cgroup/memory.max"),
    "quota_v1": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"),
    "period_v1": read("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us"),
    "cpu_v2": read("/sys/fs/cgroup/cpu.max"),
    "uid": os.getuid(),
    "gid": os.getgid(),
    "cwd": os.getcwd(),
    "env": dict(os.environ),
}
os.makedirs("outputs", exist_ok=True)
with open("outputs/info.json", "w") as f:
    json.dump(info, f)
from mltrain import Run
Run.get_context().log("wrote", 1)
"""


def test_limits_environment_and_file_ownership(mltrain, cli_json, project, python_image, docker_client):
    write_script(project / "src", "info.py", LIMITS_SCRIPT)
    proc = mltrain(
        *bare(python_image, "job.script=info.py", "compute.cpus=0.5", "compute.memory_gb=0.25"),
        "compute.keep_container=true",
        "+job.env_vars.JOB_SETTING=from-the-job",
        env={"MLTRAIN_TEST_HOST_ONLY": "must-not-leak"},
    )
    assert proc.returncode == 0, proc.output
    run = only_run(cli_json)
    assert run["status"] == "Completed"
    assert run["metrics"]["wrote"] == 1
    run_dir = Path(run["run_dir"])
    info = json.loads((run_dir / "outputs" / "info.json").read_text())

    # limits, as the engine holds them and as the script sees them in its cgroup
    (container,) = docker_client.containers.list(all=True, filters={"label": f"mltrain.run_id={run['id']}"})
    try:
        assert container.attrs["HostConfig"]["NanoCpus"] == 500_000_000
        assert container.attrs["HostConfig"]["Memory"] == 256 * 2**20
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    finally:
        container.remove(force=True)
    memory = info["mem_v1"] or info["mem_v2"]
    assert int(memory) == 256 * 2**20
    if info["cpu_v2"]:
        quota, period = info["cpu_v2"].split()
    else:
        quota, period = info["quota_v1"], info["period_v1"]
    assert int(quota) / int(period) == 0.5

    # the job's environment only: never the caller's
    assert info["env"]["JOB_SETTING"] == "from-the-job"
    assert "MLTRAIN_TEST_HOST_ONLY" not in info["env"]
    assert "DOCKER_HOST" not in info["env"]
    assert info["env"]["MLTRAIN_RUN_DIR"] == info["cwd"] == "/mltrain/run"

    # the caller's uid:gid, so the run folder holds no files of another owner
    assert (info["uid"], info["gid"]) == (os.getuid(), os.getgid())
    for path in (run_dir / "outputs" / "info.json", run_dir / ".mltrain" / "metrics.jsonl"):
        assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())


def test_user_option_runs_the_script_as_that_user(mltrain, cli_json, project, python_image):
    write_script(project / "src", "who.py", "import os\nprint('uid', os.getuid(), 'home', os.environ['HOME'])\n")
    proc = mltrain(*bare(python_image, "job.script=who.py", "compute.user=1234:1234"))
    assert proc.returncode == 0, proc.output
    assert "uid 1234 home /tmp" in proc.stdout


def test_out_of_memory_is_named_in_the_error(mltrain, cli_json, project, python_image):
    write_script(project / "src", "hog.py", "data = b'x' * (512 * 2**20)\nprint(len(data))\n")
    proc = mltrain(*bare(python_image, "job.script=hog.py", "compute.memory_gb=0.125"))
    assert proc.returncode != 0, proc.output
    run = only_run(cli_json)
    assert run["status"] == "Failed"
    assert "out of memory" in run["error"]
    assert "compute.memory_gb" in run["error"]


LOOP_SCRIPT = """
import os, time
from mltrain import Run

run = Run.get_context()
os.makedirs("outputs", exist_ok=True)
with open("outputs/partial.txt", "w") as f:
    f.write("written before the cancel\\n")
for i in range(100000):
    run.log("step", i)
    time.sleep(0.1)
"""


def test_cancel_stops_the_container_and_keeps_what_it_wrote(project, cli_json, python_image, docker_client):
    write_script(project / "src", "loop.py", LOOP_SCRIPT)
    driver = subprocess.Popen(
        [sys.executable, "-m", "mltrain", *bare(python_image, "job.script=loop.py")],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not list((project / ".mltrain" / "runs").glob("*/outputs/partial.txt")):
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.2)
        run_id = cli_json("runs", "list")[0]["id"]
        assert docker_client.containers.list(filters={"label": f"mltrain.run_id={run_id}"})
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, out + err
    run = cli_json("runs", "show", run_id)
    assert run["status"] == "Canceled"
    assert "outputs/partial.txt" in {a["path"] for a in run["artifacts"]}
    assert run["metrics"]["step"] >= 0
    assert docker_client.containers.list(all=True, filters={"label": f"mltrain.run_id={run_id}"}) == []


def test_two_processes_building_one_image_build_it_once(project, cli_json, python_image, docker_client):
    write_script(project / "src", "hello.py", "print('hello from the container')\n")
    key = uuid.uuid4().hex  # a build env var of the spec: a new image hash, the same layers below it
    args = [sys.executable, "-m", "mltrain", *bare(python_image, "job.script=hello.py")]
    args.append(f"+environment.env_vars.PIP_MLTRAIN_TEST_KEY={key}")
    before = env_tags(docker_client)
    procs = [subprocess.Popen(args, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    procs.append(subprocess.Popen(args, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("[build] building image" in out for out in outputs) == 1, "\n=====\n".join(outputs)
    assert all("hello from the container" in out for out in outputs)
    # one new image (PIP_* variables reach the build as build arguments, never as ENV in the image)
    assert len(env_tags(docker_client) - before) == 1


def test_container_of_a_killed_driver_is_stopped_by_orphan_recovery(project, cli_json, python_image, docker_client):
    write_script(project / "src", "loop.py", LOOP_SCRIPT)
    driver = subprocess.Popen(
        [sys.executable, "-m", "mltrain", *bare(python_image, "job.script=loop.py")],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600
        while not list((project / ".mltrain" / "runs").glob("*/outputs/partial.txt")):
            assert driver.poll() is None
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.2)
    finally:
        driver.kill()
        driver.wait()
    run_id = next((project / ".mltrain" / "runs").iterdir()).name
    (container,) = docker_client.containers.list(filters={"label": f"mltrain.run_id={run_id}"})
    assert container.attrs["State"]["Pid"] > 0

    run = cli_json("runs", "show", run_id)  # the next command finds the orphan and stops its job
    assert run["status"] == "Failed"
    assert "driver lost" in run["error"]
    assert run["job_ref"] == {"kind": "docker", "container": container.id, "engine": os.environ["DOCKER_HOST"]}
    assert "outputs/partial.txt" in {a["path"] for a in run["artifacts"]}
    assert run["metrics"]["step"] >= 0
    # stopped through the stored reference, then removed
    assert docker_client.containers.list(all=True, filters={"label": f"mltrain.run_id={run_id}"}) == []


FAILING_SCRIPT = """
import sys
print("to stdout", flush=True)
sys.stderr.write("to stderr, no newline")
sys.stderr.flush()
sys.exit(3)
"""


def test_stdout_and_stderr_are_kept_apart_and_a_failing_script_fails_the_run(mltrain, cli_json, project, python_image):
    write_script(project / "src", "fail.py", FAILING_SCRIPT)
    proc = mltrain(*bare(python_image, "job.script=fail.py"))
    assert proc.returncode != 0
    assert "to stdout" in proc.stdout and "to stdout" not in proc.stderr
    assert "to stderr, no newline" in proc.stderr and "to stderr" not in proc.stdout
    run = only_run(cli_json)
    assert run["status"] == "Failed"
    assert run["exit_code"] == 3
    assert "exit code 3" in run["error"]
    assert "to stderr, no newline" in run["error"]  # the partial last line of stderr


def test_environment_variables_reach_the_container_but_not_the_image(
    mltrain, cli_json, project, python_image, docker_client
):
    secret = f"s3cret-{uuid.uuid4().hex}"
    write_script(project / "src", "info.py", LIMITS_SCRIPT)
    proc = mltrain(
        *bare(python_image, "job.script=info.py"),
        "+environment.env_vars.MLTRAIN_TEST_SECRET=${oc.env:DRIVER_SECRET}",  # read when the job starts
        env={"DRIVER_SECRET": secret},
    )
    assert proc.returncode == 0, proc.output
    run = only_run(cli_json)
    info = json.loads((Path(run["run_dir"]) / "outputs" / "info.json").read_text())
    assert info["env"]["MLTRAIN_TEST_SECRET"] == secret  # passed when the container starts
    assert run["config"]["environment"]["env_vars"] == {"MLTRAIN_TEST_SECRET": "${oc.env:DRIVER_SECRET}"}
    for db_file in (project / ".mltrain").glob("mltrain.db*"):  # nor in the record (database and WAL)
        assert secret.encode() not in db_file.read_bytes()
    tag = next(e for e in cli_json("envs", "list") if e["hash"] == run["env_hash"])["location"]
    image = docker_client.images.get(tag)
    assert not any("MLTRAIN_TEST_SECRET" in e for e in image.attrs["Config"].get("Env") or [])
    assert secret not in json.dumps(image.history()) and secret not in json.dumps(image.attrs)
