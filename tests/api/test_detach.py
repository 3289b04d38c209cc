"""``python -m mltrain detach=true``: the run is recorded and its driver goes on in a session of its own
(the starting terminal may close: SIGHUP), ``mltrain runs logs ID -f`` follows it from the start,
``mltrain runs wait ID`` exits with the run's code; a detached driver that dies is recovered like any
lost driver; sweeps (``-m``) detach too."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest
from support import pid_alive, wait_dead, write_script

BASE = ("environment=system", "~register", "job.source_dir=src")
ID = re.compile(r"run (\d{8}_\d{6}_[0-9a-f]{6}) started detached")


def started_id(proc) -> str:
    assert proc.returncode == 0, proc.output
    found = ID.search(proc.stdout)
    assert found, proc.output
    return found.group(1)


def test_detached_run_is_followed_from_the_start_and_waited_for(mltrain, cli, cli_json, project):
    write_script(
        project / "src",
        "steps.py",
        "import time\nfor i in range(4):\n    print('step', i, flush=True)\n    time.sleep(0.3)\n",
    )
    proc = mltrain("detach=true", *BASE, "job.script=steps.py")
    run_id = started_id(proc)
    assert f"mltrain runs logs {run_id} -f" in proc.stdout and f"mltrain runs wait {run_id}" in proc.stdout
    assert "step" not in proc.stdout  # the output goes to the run, not to the terminal that started it
    logs = cli("runs", "logs", run_id, "-f")
    assert logs.returncode == 0, logs.output
    assert [f"step {i}" in logs.stdout for i in range(4)] == [True] * 4
    assert logs.stdout.index("step 0") < logs.stdout.index("step 3")
    assert f"run {run_id} Completed" in logs.stderr
    waited = cli("runs", "wait", run_id)
    assert waited.returncode == 0 and f"run {run_id} Completed" in waited.stdout
    run = cli_json("runs", "show", run_id)
    assert run["status"] == "Completed" and run["snapshot_id"] and run["env_hash"]
    assert [h["status"] for h in run["history"]][:2] == ["Queued", "Preparing"]
    assert "Run " + run_id in (Path(run["run_dir"]) / "logs" / "driver.log").read_text()  # the summary


@pytest.mark.parametrize(("script", "code", "status"), [("raise SystemExit(3)", 1, "Failed")])
def test_wait_exits_with_the_runs_code(mltrain, cli, project, script, code, status):
    write_script(project / "src", "job.py", script + "\n")
    run_id = started_id(mltrain("detach=true", *BASE, "job.script=job.py"))
    waited = cli("runs", "wait", run_id)
    assert waited.returncode == code, waited.output
    assert f"run {run_id} {status}: the script failed (exit code 3)" in waited.stdout


def test_a_canceled_detached_run_waits_with_130(mltrain, cli, project):
    write_script(project / "src", "slow.py", "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    run_id = started_id(mltrain("detach=true", *BASE, "job.script=slow.py"))
    assert cli("runs", "cancel", run_id).returncode == 0
    waited = cli("runs", "wait", run_id)
    assert waited.returncode == 130, waited.output


def test_config_errors_are_reported_by_the_starting_command(mltrain, project):
    write_script(project / "src", "ok.py", "print('ok')\n")
    typo = mltrain("detach=true", *BASE, "job.script=ok.py", "job.argumentz=1")
    assert typo.returncode == 2 and "Could not override 'job.argumentz'" in typo.stderr
    missing = mltrain("detach=true", *BASE, "job.script=nope.py")
    assert missing.returncode == 2 and "job.script 'nope.py' not found" in missing.stderr
    bad = mltrain("detach=maybe", *BASE, "job.script=ok.py")
    assert bad.returncode == 2 and "detach='maybe' is not true or false" in bad.stderr
    cfg = mltrain("detach=true", "--cfg", "job")
    assert cfg.returncode == 2 and "does not go with --cfg" in cfg.stderr
    assert not (project / ".mltrain").exists()  # nothing recorded, no workspace left behind
    plain = mltrain("detach=false", *BASE, "job.script=ok.py")
    assert plain.returncode == 0 and "ok" in plain.stdout  # detach=false: an ordinary run


def test_detached_run_survives_its_terminal_closing(cli, cli_json, project):
    """The starting shell runs on a pseudo-terminal; closing it sends SIGHUP to the shell (which dies);
    the run goes on and completes."""
    write_script(
        project / "src",
        "long.py",
        "import time\nfor i in range(6):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n",
    )
    command = f"{sys.executable} -m mltrain detach=true {' '.join(BASE)} job.script=long.py; sleep 600"
    pid, master = pty.fork()
    if pid == 0:  # the "terminal" session: a shell as its leader
        os.chdir(project)
        os.execvp("sh", ["sh", "-c", command])
    output = b""
    deadline = time.monotonic() + 120
    while not ID.search(output.decode(errors="replace")) and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                output += os.read(master, 4096)
            except OSError:
                break
    run_id = ID.search(output.decode(errors="replace"))
    assert run_id, output
    os.close(master)  # the terminal closes: SIGHUP to its session
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGHUP
    waited = cli("runs", "wait", run_id.group(1))
    assert waited.returncode == 0, waited.output
    log = cli("runs", "logs", run_id.group(1))
    assert "tick 5" in log.stdout


def test_a_detached_driver_that_dies_is_recovered(mltrain, cli, cli_json, project):
    write_script(
        project / "src",
        "hang.py",
        "import os, time\nopen('pid', 'w').write(str(os.getpid()))\nprint('up', flush=True)\ntime.sleep(300)\n",
    )
    run_id = started_id(mltrain("detach=true", *BASE, "job.script=hang.py"))
    run = cli_json("runs", "show", run_id)
    pid_file = Path(run["run_dir"]) / "pid"
    deadline = time.monotonic() + 120
    while not pid_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    script_pid = int(pid_file.read_text())
    os.kill(run["driver_pid"], signal.SIGKILL)
    assert wait_dead(run["driver_pid"])
    waited = cli("runs", "wait", run_id)
    assert waited.returncode == 1, waited.output
    assert "driver lost" in waited.stdout
    assert wait_dead(script_pid), "the job was stopped through its compute target"
    assert not pid_alive(script_pid)
    assert "up" in cli("runs", "logs", run_id).stdout  # what its folder held was stored


def test_a_detached_sweep(mltrain, cli, cli_json, project):
    write_script(
        project / "src",
        "sq.py",
        "import sys\nfrom mltrain import Run\nRun.get_context().log('y', int(sys.argv[-1]) ** 2)\n",
    )
    proc = mltrain("detach=true", "-m", *BASE, "job.script=sq.py", "job.arguments=null", "+job.arguments.x=1,2,3")
    sweep_id = started_id(proc)
    waited = cli("runs", "wait", sweep_id)
    assert waited.returncode == 0, waited.output
    children = cli_json("runs", "list", "-n", "10")
    assert sorted(r["arguments"][-1] for r in children if r["parent_run_id"] == sweep_id) == ["1", "2", "3"]
    # its whole output, from the start, is in its folder
    log = (Path(cli_json("runs", "show", sweep_id)["run_dir"]) / "logs" / "driver.log").read_text()
    assert log.index(f"sweep {sweep_id} (") < log.index(f"Sweep {sweep_id}: Completed")
    bad = mltrain("detach=true", "-m", *BASE, "job.script=sq.py", "job.argumentz=1")
    assert bad.returncode == 2 and "job.argumentz" in bad.stderr, bad.output
