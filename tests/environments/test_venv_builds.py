"""venv environments, built for real with uv: first build, cache hit without the network, lock
reuse and re-lock, concurrent builders, failed builds, another Python version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from envtools import (
    OFFLINE,
    build_log,
    open_workspace,
    probed,
    runs,
    venv_folders,
    write_bad_package,
    write_conf,
)

pytestmark = pytest.mark.slow


def test_first_run_builds_and_second_run_reuses_it_without_the_network(
    project: Path, private_cache: Path, probe_job: str, mltrain, cli_json
) -> None:
    write_conf(project, "environment", "tiny", {"name": "tiny", "build": "venv", "pip": ["six==1.17.0"]})

    first = mltrain("environment=tiny", probe_job, "job.args=[six]")
    assert first.returncode == 0, first.output
    assert probed(first.stdout)["six"] == "1.17.0"
    assert str(private_cache) in probed(first.stdout)["prefix"]  # ran in the built venv, not mltrain's
    assert "[build] building environment tiny" in first.stdout  # build output streams during Preparing
    run1 = runs(cli_json)[0]
    assert "building environment tiny" in build_log(run1)
    assert "six==1.17.0" in build_log(run1)
    built = venv_folders(private_cache)
    assert len(built) == 1

    # the package index is unreachable and uv may not use the network or its cache: only a cache hit works
    second = mltrain("environment=tiny", probe_job, "job.args=[six]", env=OFFLINE)
    assert second.returncode == 0, second.output
    assert probed(second.stdout)["six"] == "1.17.0"
    assert "[build]" not in second.stdout
    run2 = runs(cli_json)[0]
    assert run2["id"] != run1["id"] and run2["status"] == "Completed"
    assert "building environment" not in build_log(run2)
    assert run2["env_hash"] == run1["env_hash"]
    assert venv_folders(private_cache) == built

    # the same offline setting does stop anything that needs the index: a spec not locked yet fails cleanly
    other = mltrain("environment=tiny", probe_job, "environment.pip=[tomli]", env=OFFLINE)
    assert other.returncode == 2, other.output
    assert "network" in other.stderr


def test_name_and_version_do_not_change_the_cache_key(project: Path, private_cache: Path) -> None:
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec
    from mltrain.environments.venv import VenvBuilder

    ws = open_workspace(project)
    a = resolve(EnvSpec.from_config({"name": "a", "version": "1", "build": "venv", "pip": ["six==1.17.0"]}), ws)
    b = resolve(EnvSpec.from_config({"name": "b", "version": "7", "build": "venv", "pip": ["six==1.17.0"]}), ws)
    assert a.hash == b.hash
    built_a = VenvBuilder().materialise(a, lambda line: None)
    built_b = VenvBuilder().materialise(b, lambda line: None)
    assert not built_a.cached and built_b.cached
    assert built_a.location == built_b.location
    py312 = resolve(EnvSpec.from_config({"name": "a", "build": "venv", "python": "3.12", "pip": ["six==1.17.0"]}), ws)
    build_var = resolve(
        EnvSpec.from_config({"name": "a", "build": "venv", "pip": ["six==1.17.0"], "env_vars": {"UV_NO_BINARY": "1"}}),
        ws,
    )
    job_var = resolve(
        EnvSpec.from_config({"name": "a", "build": "venv", "pip": ["six==1.17.0"], "env_vars": {"MY_SETTING": "1"}}),
        ws,
    )
    assert len({a.hash, py312.hash, build_var.hash}) == 3
    assert job_var.hash == a.hash  # a variable only the job reads does not change the build


def test_a_proxy_of_env_vars_reaches_the_lock_and_the_build_but_is_not_part_of_the_environment(
    project: Path, private_cache: Path, probe_job: str, mltrain, cli_json, tmp_path: Path
) -> None:
    """``environment.env_vars.HTTP_PROXY`` (read from the environment, with a password) is what locking
    and building go through; another proxy is the same environment: its lock and venv are reused."""
    from support import UNREACHED_INDEX, proxied_index

    env_vars = {"UV_INDEX_URL": UNREACHED_INDEX, "HTTP_PROXY": "${oc.env:TEST_PROXY}"}
    write_conf(
        project,
        "environment",
        "behind",
        {"name": "behind", "build": "venv", "pip": ["proxied_pkg==0.1"], "env_vars": env_vars},
    )
    uv_cache = {"UV_CACHE_DIR": str(tmp_path / "uv")}  # empty: the package can only come through the proxy
    with proxied_index({"proxied_pkg": "0.1"}) as index:
        first = mltrain(
            "environment=behind",
            probe_job,
            "job.args=[proxied_pkg]",
            env={**uv_cache, "TEST_PROXY": index.url("me", "s3cret")},
        )
    assert first.returncode == 0, first.output
    assert probed(first.stdout)["proxied_pkg"] == "0.1"
    assert index.fetched("/simple/proxied-pkg/") and set(index.fetched("")) == {"me"}  # locked through it
    assert index.fetched("/files/proxied_pkg-0.1-py3-none-any.whl")
    assert "s3cret" not in first.stdout + first.stderr
    run1 = runs(cli_json)[0]
    assert cli_json("runs", "show", run1["id"])["config"]["environment"]["env_vars"] == env_vars  # as written

    # only the proxy changed (to one where nothing listens): the same lock and venv, nothing fetched
    second = mltrain(
        "environment=behind", probe_job, "job.args=[proxied_pkg]", env={**uv_cache, "TEST_PROXY": "http://127.0.0.1:9"}
    )
    assert second.returncode == 0, second.output
    assert probed(second.stdout)["proxied_pkg"] == "0.1"
    assert "locking environment" not in second.stderr and "[build]" not in second.stdout
    assert runs(cli_json)[0]["env_hash"] == run1["env_hash"]


def test_unpinned_spec_keeps_its_lock_until_rebuild(
    project: Path, private_cache: Path, probe_job: str, mltrain, tmp_path: Path
) -> None:
    write_conf(project, "environment", "loose", {"name": "loose", "build": "venv", "pip": ["six"]})
    old = tmp_path / "old-six.txt"
    old.write_text("six==1.16.0\n")

    # first use locks the spec: at that time the index (here: a constraint) offered six 1.16.0
    first = mltrain("environment=loose", probe_job, "job.args=[six]", env={"UV_CONSTRAINT": str(old)})
    assert first.returncode == 0, first.output
    assert probed(first.stdout)["six"] == "1.16.0"

    # newer versions are available now; the unpinned spec does not change silently (and needs no index)
    again = mltrain("environment=loose", probe_job, "job.args=[six]", env=OFFLINE)
    assert again.returncode == 0, again.output
    assert probed(again.stdout)["six"] == "1.16.0"

    # rebuild re-locks: the spec moves to what the index offers now
    fresh = mltrain("environment=loose", probe_job, "job.args=[six]", "environment.rebuild=true")
    assert fresh.returncode == 0, fresh.output
    newest = probed(fresh.stdout)["six"]
    assert newest != "1.16.0"
    assert "[build] building environment loose" in fresh.stdout

    # and the new lock is the one kept
    after = mltrain("environment=loose", probe_job, "job.args=[six]", env=OFFLINE)
    assert after.returncode == 0, after.output
    assert probed(after.stdout)["six"] == newest


def test_two_processes_building_the_same_environment_build_it_once(
    project: Path, private_cache: Path, probe_job: str, cli_json
) -> None:
    from mltrain.environments.cache import file_lock
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec
    from mltrain.environments.venv import venv_path

    node = {"name": "shared", "build": "venv", "pip": ["tomli==2.2.1"]}
    write_conf(project, "environment", "shared", node)
    env = resolve(EnvSpec.from_config(node), open_workspace(project))  # the lock both runs will read
    target = venv_path(env.hash)
    cmd = [sys.executable, "-m", "mltrain", "environment=shared", probe_job, "job.args=[tomli]"]
    procs: list[subprocess.Popen[str]] = []
    seen: list[str] = []
    try:
        # hold the build lock while both start, so that both try to build at the same time
        with file_lock(target.parent / f".{target.name}.lock"):
            for _ in range(2):
                proc = subprocess.Popen(cmd, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                procs.append(proc)
                assert proc.stdout is not None
                lines = []
                for line in proc.stdout:  # until it waits for the lock (EOF when it failed instead)
                    lines.append(line)
                    if "waiting for another process that is building environment shared" in line:
                        break
                seen.append("".join(lines))
                assert "waiting for another process" in seen[-1], seen[-1]
        outputs = [text + proc.communicate(timeout=600)[0] for text, proc in zip(seen, procs, strict=True)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
        assert probed(out)["tomli"] == "2.2.1"
    all_runs = runs(cli_json)
    assert [r["status"] for r in all_runs] == ["Completed", "Completed"]
    logs = [build_log(r) for r in all_runs]
    assert sum("building environment shared: Python" in log for log in logs) == 1
    assert sum("was built by another process; reusing" in log for log in logs) == 1
    assert venv_folders(private_cache) == [target.name]


def test_a_failed_build_leaves_nothing_and_shows_its_log(
    project: Path, private_cache: Path, probe_job: str, mltrain, cli_json
) -> None:
    write_bad_package(project)
    write_conf(project, "environment", "broken", {"name": "broken", "build": "venv", "pip": ["six", "./badpkg"]})

    proc = mltrain("environment=broken", probe_job)
    assert proc.returncode == 1, proc.output
    assert "the build failed" in proc.output
    assert "error: no compiler found" in proc.stderr + proc.stdout  # the end of the build log, in the error
    run = runs(cli_json)[0]
    assert run["status"] == "Failed"
    assert "no compiler found" in run["error"]
    assert "no compiler found" in build_log(run)  # the whole log is kept with the run
    assert venv_folders(private_cache) == []  # no venv, no scratch folder

    # fixing the spec builds (the failed attempt left nothing in the way)
    write_conf(project, "environment", "broken", {"name": "broken", "build": "venv", "pip": ["six"]})
    fixed = mltrain("environment=broken", probe_job, "job.args=[six]")
    assert fixed.returncode == 0, fixed.output
    assert len(venv_folders(private_cache)) == 1


def test_a_build_killed_midway_is_cleaned_up_by_the_next_build(project: Path, private_cache: Path) -> None:
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec
    from mltrain.environments.venv import VenvBuilder, venv_path

    env = resolve(EnvSpec.from_config({"name": "k", "build": "venv", "pip": ["six==1.17.0"]}), open_workspace(project))
    target = venv_path(env.hash)
    scratch = target.parent / f".build-{target.name}-killed"  # what a SIGKILLed build leaves
    (scratch / "bin").mkdir(parents=True)
    built = VenvBuilder().materialise(env, lambda line: None)
    assert not built.cached
    assert venv_folders(private_cache) == [target.name]


def test_a_venv_for_another_python_version(project: Path, probe_job: str, mltrain) -> None:
    from mltrain.environments.cache import find_python
    from mltrain.errors import EnvironmentSpecError

    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.13"
    try:
        find_python(other)
    except EnvironmentSpecError:
        pytest.skip(f"Python {other} is not installed on this machine")
    write_conf(project, "environment", "other", {"name": "other", "build": "venv", "python": other, "pip": ["six"]})
    proc = mltrain("environment=other", probe_job, "job.args=[six]")
    assert proc.returncode == 0, proc.output
    assert probed(proc.stdout)["python"] == other
    assert os.path.realpath(probed(proc.stdout)["prefix"]) != os.path.realpath(sys.prefix)


def test_a_process_knows_when_it_started_to_within_a_clock_tick():
    """What "built by another process meanwhile" is judged by (a `--rebuild` right after a build must
    build again): a process's start time, not rounded to the boot time's whole second."""
    import subprocess
    import sys
    import time

    code = "from mltrain.environments.cache import process_started_at; print(repr(process_started_at()))"
    for _ in range(5):
        before = time.time()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        after = time.time()
        started = float(out)
        assert before - 0.02 <= started <= after, (before, started, after)  # 0.02: one clock tick and rounding
