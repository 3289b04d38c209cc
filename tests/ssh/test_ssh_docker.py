"""``build: docker`` on SSH compute, against a real sshd and the test session's real dockerd: the
image is built on the host (its engine found through the host's DOCKER_HOST) and reused, the job
runs in a container there with output and metrics streamed, Ctrl-C and recovery stop the container,
a host without Docker is refused before a run is recorded, and `mltrain envs prune` given the pool
removes the image and the venv that live on the host."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import start_mltrain, write_script

pytestmark = [pytest.mark.docker, pytest.mark.slow]

JOB = """
import os, sys
from pathlib import Path
from mltrain import Run
run = Run.get_context()
print("IN", sys.prefix, "container" if os.path.exists("/.dockerenv") else "host", flush=True)
run.log("answer", 42)
Path("outputs").mkdir(exist_ok=True)
Path("outputs/result.txt").write_text("made in " + os.getcwd())
"""

SLOW = """
import time
from mltrain import Run
run = Run.get_context()
print("STARTED", flush=True)
for i in range(120):
    run.log("step", i, step=i)
    run.flush()
    time.sleep(0.5)
print("FINISHED", flush=True)
"""


@dataclass
class DockerHost:
    host: object  # loopback_sshd.Host
    known_hosts: Path

    def compute(self) -> list[str]:
        """Overrides selecting this host as the SSH compute."""
        entry = ",".join(f"{k}:{v}" for k, v in self.host.entry().items())  # type: ignore[attr-defined]
        return ["+compute=ssh", f"compute.hosts=[{{{entry}}}]", f"compute.known_hosts={self.known_hosts}"]

    def overrides(self, image: str, name: str, *extra: str) -> list[str]:
        """A job on this host in a ``build: docker`` environment without packages."""
        return [
            *self.compute(),
            "environment.build=docker",
            f"environment.name={name}",
            "environment.pip=[]",
            f"environment.docker.base_image={image}",
            "~register",
            "job.source_dir=src",
            *extra,
        ]


@pytest.fixture(scope="module")
def docker_host(ssh_pool, docker_engine, tmp_path_factory) -> Iterator[DockerHost]:
    """An SSH host whose sessions reach the session's dockerd (DOCKER_HOST in the host's environment)."""
    host = ssh_pool.make_host("127.0.0.5", "docker-host", env={"DOCKER_HOST": docker_engine.base_url})
    known = tmp_path_factory.mktemp("docker-host") / "known_hosts"
    known.write_text(host.known_hosts_line())
    yield DockerHost(host, known)


def _containers(docker_client, run_id: str) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"mltrain.run_id={run_id}"})


def _wait_for_job(workdir: Path, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for out in workdir.glob("runs/*/.mltrain/stdout"):
            if b"STARTED" in out.read_bytes():
                return out.parent.parent
        time.sleep(0.1)
    raise AssertionError(f"no job started under {workdir}")


def test_docker_environment_is_built_on_the_host_then_reused(
    mltrain, cli_json, project, docker_host, python_image, docker_client
):
    write_script(project / "src", "job.py", JOB)
    args = docker_host.overrides(python_image, "ssh-docker-bare", "job.script=job.py")
    first = mltrain(*args)
    assert first.returncode == 0, first.output
    assert "building image mltrain-env:" in first.stdout and "on root@127.0.0.5" in first.stdout
    assert "IN /opt/mltrain/venv container" in first.stdout  # streamed from the container on the host
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    assert run["status"] == "Completed"
    assert run["metrics"]["answer"] == 42  # metrics written in the container came back
    assert "outputs/result.txt" in {a["path"] for a in run["artifacts"]}
    ref = run["job_ref"]
    assert ref["kind"] == "ssh" and ref["host"] == "127.0.0.5" and ref["container"] == f"mltrain-{run['id']}"
    (env,) = [e for e in cli_json("envs", "list") if e["name"] == "ssh-docker-bare"]
    assert env["builder"] == f"docker@ssh:root@127.0.0.5:{docker_host.host.port}"  # lives on that host
    assert env["location"].startswith("mltrain-env:")
    image = docker_client.images.get(env["location"])  # in the host's engine
    assert not _containers(docker_client, run["id"])  # the container went with the job
    assert not (docker_host.host.workdir / "runs" / run["id"]).exists()

    second = mltrain(*args)
    assert second.returncode == 0, second.output
    assert "building image" not in second.stdout  # the host's image is reused
    assert "IN /opt/mltrain/venv container" in second.stdout
    assert docker_client.images.get(env["location"]).id == image.id
    assert [r["status"] for r in cli_json("runs", "list")] == ["Completed"] * 2


def test_ctrl_c_stops_the_container_on_the_host(project, cli_json, docker_host, python_image, docker_client):
    write_script(project / "src", "slow.py", SLOW)
    args = docker_host.overrides(python_image, "ssh-docker-bare", "job.script=slow.py", "compute.cancel_grace_s=2")
    proc = start_mltrain(project, *args)
    run_dir = _wait_for_job(docker_host.host.workdir)
    assert _containers(docker_client, run_dir.name)[0].status == "running"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    run = cli_json("runs", "show", run_dir.name)
    assert run["status"] == "Canceled", out + err
    assert run["metrics"]["step"] >= 0  # tailed live while it ran
    assert not _containers(docker_client, run_dir.name)
    assert not run_dir.exists()


def test_driver_killed_then_recovery_stops_the_container(
    project, cli, cli_json, docker_host, python_image, docker_client
):
    write_script(project / "src", "slow.py", SLOW)
    proc = start_mltrain(project, *docker_host.overrides(python_image, "ssh-docker-bare", "job.script=slow.py"))
    run_dir = _wait_for_job(docker_host.host.workdir)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert _containers(docker_client, run_dir.name)[0].status == "running"  # it outlived its driver
    got = cli("runs", "list")  # the next command recovers it through the stored reference
    assert got.returncode == 0, got.output
    run = cli_json("runs", "list")[0]
    assert run["status"] == "Failed" and "driver lost" in run["error"]
    assert not _containers(docker_client, run_dir.name)
    assert not run_dir.exists()


def test_host_without_docker_is_refused_before_the_run(
    mltrain, cli_json, project, ssh_pool, docker_host, python_image, tmp_path
):
    write_script(project / "src", "job.py", "print('never runs')\n")
    bin_dir = tmp_path / "bin"  # the host's PATH: the programs of this machine but docker
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for program in Path(folder).iterdir() if Path(folder).is_dir() else ():
            if program.name != "docker" and not (bin_dir / program.name).exists():
                (bin_dir / program.name).symlink_to(program)
    host = ssh_pool.make_host("127.0.0.6", f"no-docker-{time.monotonic_ns()}", env={"PATH": str(bin_dir)})
    known = tmp_path / "known_hosts"
    known.write_text(host.known_hosts_line())
    no_docker = DockerHost(host, known)
    proc = mltrain(*no_docker.overrides("mltrain-test/python:bookworm", "ssh-docker-none", "job.script=job.py"))
    assert proc.returncode != 0, proc.output
    assert "docker is not installed on this host" in proc.stderr, proc.output
    assert "install Docker on the host" in proc.stderr  # the fix
    # docker there, but no engine behind it (no DOCKER_HOST in that host's environment, no default socket)
    unreachable = DockerHost(ssh_pool.hosts[0], ssh_pool.known_hosts)
    proc = mltrain(*unreachable.overrides("mltrain-test/python:bookworm", "ssh-docker-none", "job.script=job.py"))
    assert proc.returncode != 0, proc.output
    assert "Docker engine of this host cannot be reached" in proc.stderr, proc.output
    assert cli_json("runs", "list") == []  # nothing was recorded
    # in a pool, such a host is skipped with the reason and the run goes to one with Docker
    known.write_text(host.known_hosts_line() + docker_host.known_hosts.read_text())
    entries = ",".join("{" + ",".join(f"{k}:{v}" for k, v in h.entry().items()) + "}" for h in (host, docker_host.host))
    pool = no_docker.overrides(python_image, "ssh-docker-bare", "job.script=job.py")
    pool[1] = f"compute.hosts=[{entries}]"
    proc = mltrain(*pool)
    assert proc.returncode == 0, proc.output
    assert f"skipping SSH host root@127.0.0.6:{host.port}" in proc.stderr and "docker is not installed" in proc.stderr
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    assert run["status"] == "Completed" and run["job_ref"]["host"] == "127.0.0.5"


def test_envs_prune_given_the_pool_removes_what_lives_on_the_host(
    mltrain, cli, cli_json, project, docker_host, python_image, docker_client
):
    write_script(project / "src", "job.py", JOB)
    args = docker_host.overrides(python_image, "ssh-docker-bare", "job.script=job.py")
    assert mltrain(*args).returncode == 0
    venv_args = [a if a != "environment.build=docker" else "environment.build=venv" for a in args]
    venv_run = mltrain(*[a.replace("ssh-docker-bare", "ssh-venv-bare") for a in venv_args])
    assert venv_run.returncode == 0, venv_run.output
    envs = {e["name"]: e for e in cli_json("envs", "list")}
    where = f"@ssh:root@127.0.0.5:{docker_host.host.port}"
    assert envs["ssh-docker-bare"]["builder"] == "docker" + where
    assert envs["ssh-venv-bare"]["builder"] == "venv" + where
    venv_folder = Path(envs["ssh-venv-bare"]["location"])
    assert venv_folder.is_dir() and docker_host.host.workdir in venv_folder.parents
    time.sleep(1.1)

    # without the pool: kept, saying how to reach them
    kept = cli_json("envs", "prune", "--older-than", "1s")
    notes = {e["name"]: e for e in kept["environments"]}
    assert not notes["ssh-docker-bare"]["remove"] and "give its compute" in notes["ssh-docker-bare"]["note"]
    assert docker_client.images.get(envs["ssh-docker-bare"]["location"])

    # given the pool: removed on the host, records deleted
    done = cli_json("envs", "prune", "--older-than", "1s", *docker_host.compute())
    removed = {e["name"] for e in done["environments"] if e["remove"]}
    assert {"ssh-docker-bare", "ssh-venv-bare"} <= removed, done
    assert not venv_folder.exists()
    assert not docker_client.images.list(name=envs["ssh-docker-bare"]["location"])
    names = {e["name"] for e in cli_json("envs", "list")}
    assert not names & {"ssh-docker-bare", "ssh-venv-bare"}


def test_cpus_and_memory_gb_limit_the_container_on_the_host(mltrain, cli_json, project, docker_host, python_image):
    write_script(project / "src", "fails.py", "import sys\nprint('LIMITED', flush=True)\nsys.exit(3)\n")
    limits = ("compute.cpus=1.5", "compute.memory_gb=0.5", "compute.keep_failed=true")
    proc = mltrain(*docker_host.overrides(python_image, "ssh-docker-bare", "job.script=fails.py", *limits))
    assert proc.returncode != 0 and "LIMITED" in proc.stdout, proc.output
    run = cli_json("runs", "list")[0]
    kept = docker_host.host.workdir / "runs" / run["id"] / ".mltrain" / "request.json"  # keep_failed kept it
    argv = json.loads(kept.read_text())["argv"]
    assert argv[argv.index("--cpus") + 1] == "1.5"
    assert argv[argv.index("--memory") + 1] == f"{512 * 1024**2}b" == argv[argv.index("--memory-swap") + 1]
